// The activities that touch this host's GPU and service, configured from the worker's environment.
// Measuring VRAM needs only nvidia-smi; predicting, canaries and restores need the managed service
// (KLR_SERVICE_*): without it they fail at once, not retried, with a message that says what to set.
import { ApplicationFailure } from '@temporalio/common';
import type { Settings } from '../config/settings.js';
import { createMeasureVram } from './measure-vram.js';
import { createPredictCandidates } from './predict-candidates.js';
import { createRestartEstimate } from './restart-estimate.js';
import { createRestoreService } from './restore-service.js';
import { createRunCanary } from './run-canary.js';
import { loadServiceSettings } from '../service/service-settings.js';
import { vllmService } from '../service/vllm-service.js';
import type { HostActivities } from './types.js';

export type GpuActivities = Pick<
  HostActivities,
  'measureVram' | 'predictCandidates' | 'runCanary' | 'restoreService'
>;

export const SERVICE_NOT_CONFIGURED = 'ServiceNotConfigured';

type Env = Record<string, string | undefined>;

export function createGpuActivities(env: Env, settings: Settings, auditDir: string): GpuActivities {
  const measureVram = createMeasureVram();
  if (!env.KLR_SERVICE_CONFIG) {
    const notConfigured = async (): Promise<never> => {
      throw ApplicationFailure.create({
        message:
          'KLR_SERVICE_CONFIG is not set on this host: predictions and canaries need the vLLM service config (see docs/configuration.md)',
        type: SERVICE_NOT_CONFIGURED,
        nonRetryable: true,
      });
    };
    return {
      measureVram,
      predictCandidates: notConfigured,
      runCanary: notConfigured,
      restoreService: notConfigured,
    };
  }
  const service = loadServiceSettings(env);
  const adapter = vllmService(service, { measureVram });
  return {
    measureVram,
    predictCandidates: createPredictCandidates({
      configPath: service.configPath,
      ...(env.KLR_MODEL_PROFILE ? { modelProfilePath: env.KLR_MODEL_PROFILE } : {}),
      ...(service.candidateFloors ? { floors: service.candidateFloors } : {}),
      logPath: service.logPath,
      serviceUrl: service.baseUrl,
      restartEstimateMs: createRestartEstimate({
        auditDir,
        host: settings.host,
        fallbackMs: service.restartTimeoutMs / 2,
      }),
    }),
    runCanary: createRunCanary({ service: adapter }),
    restoreService: createRestoreService({ service: adapter }),
  };
}
