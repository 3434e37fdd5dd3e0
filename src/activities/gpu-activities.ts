// The activities that touch this host's GPUs and services, configured from the worker's environment: the
// services file (KLR_SERVICES_FILE) or the one service of KLR_SERVICE_* (src/service/services-file.ts).
// Each call names its service by the workflow id's service part (null: the legacy service); a service
// this host does not run fails at once, not retried, with a message that says what is configured.
// Measuring VRAM needs only nvidia-smi; predicting, canaries and restores need a configured service.
import { ApplicationFailure } from '@temporalio/common';
import type { Settings } from '../config/settings.js';
import { createMeasureVram } from './measure-vram.js';
import { createPredictCandidates } from './predict-candidates.js';
import { createRestartEstimate } from './restart-estimate.js';
import { createRestoreService } from './restore-service.js';
import { createRunCanary } from './run-canary.js';
import { type ServiceSpec, loadServices } from '../service/services-file.js';
import { vllmService } from '../service/vllm-service.js';
import type { HostActivities, ServiceRef } from './types.js';

export type GpuActivities = Pick<
  HostActivities,
  'measureVram' | 'predictCandidates' | 'runCanary' | 'restoreService'
>;

export const SERVICE_NOT_CONFIGURED = 'ServiceNotConfigured';

type Env = Record<string, string | undefined>;

/** One service's activities. */
type ServiceActivities = Omit<GpuActivities, 'measureVram'> & { spec: ServiceSpec };

function notConfigured(message: string): ApplicationFailure {
  return ApplicationFailure.create({ message, type: SERVICE_NOT_CONFIGURED, nonRetryable: true });
}

/**
 * Which configured service a call means. A legacy id (service null) means the legacy service; a named id
 * must name a service that is not the legacy one — that service's workflows are the legacy ids, and a
 * second workflow for it would heal it twice.
 */
export function serviceFor<T extends { spec: ServiceSpec }>(
  services: readonly T[],
  ref: ServiceRef | undefined,
): T {
  const wanted = ref?.service ?? null;
  const names = services.map((s) => s.spec.name).join(', ');
  if (services.length === 0)
    throw notConfigured(
      'no service is configured on this host: predictions and canaries need KLR_SERVICES_FILE or KLR_SERVICE_CONFIG (see docs/configuration.md)',
    );
  if (wanted === null) {
    const legacy = services.find((s) => s.spec.legacyIds);
    if (legacy) return legacy;
    throw notConfigured(
      `this workflow's id names no service (kloros-healing/<host>/<kind>), and no service on this host continues those ids (legacyIds: true); services: ${names}`,
    );
  }
  const found = services.find((s) => s.spec.name === wanted);
  if (!found) throw notConfigured(`no service "${wanted}" on this host; services: ${names}`);
  if (found.spec.legacyIds)
    throw notConfigured(
      `service "${wanted}" continues the single-service workflows (legacyIds: true): its workflows are kloros-healing/<host>/<kind>, not this one`,
    );
  return found;
}

/** The activities of the host's services, and the services themselves (for the worker's other parts). */
export function createGpuActivities(
  env: Env,
  settings: Settings,
  auditDir: string,
): GpuActivities & { services: ServiceSpec[] } {
  const services = loadServices(env);
  const measureVram = createMeasureVram();
  const perService: ServiceActivities[] = services.map((spec) => {
    const adapter = vllmService(spec.settings, { measureVram });
    return {
      spec,
      predictCandidates: createPredictCandidates({
        configPath: spec.settings.configPath,
        ...(spec.modelProfilePath ? { modelProfilePath: spec.modelProfilePath } : {}),
        ...(spec.settings.candidateFloors ? { floors: spec.settings.candidateFloors } : {}),
        logPath: spec.settings.logPath,
        serviceUrl: spec.settings.baseUrl,
        restartEstimateMs: createRestartEstimate({
          auditDir,
          host: settings.host,
          service: { name: spec.name, legacy: spec.legacyIds },
          fallbackMs: spec.settings.restartTimeoutMs / 2,
        }),
      }),
      runCanary: createRunCanary({ service: adapter }),
      restoreService: createRestoreService({ service: adapter }),
    };
  });
  return {
    services,
    measureVram: async () => measureVram(),
    predictCandidates: async (input) => serviceFor(perService, input).predictCandidates(input),
    runCanary: async (input) => serviceFor(perService, input).runCanary(input),
    restoreService: async (input) => serviceFor(perService, input).restoreService(input),
  };
}
