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
import type { GpuProcess, VramSnapshot } from '../domain/vram-snapshot.js';
import { serviceVram } from '../domain/service-vram.js';
import { isProcessOfService, isVllmProcess } from '../service/service-process.js';

export type GpuActivities = Pick<
  HostActivities,
  'measureVram' | 'predictCandidates' | 'runCanary' | 'restoreService'
>;

export const SERVICE_NOT_CONFIGURED = 'ServiceNotConfigured';

type Env = Record<string, string | undefined>;

/** One service's activities. */
type ServiceActivities = Omit<GpuActivities, 'measureVram'> & {
  spec: ServiceSpec;
  measureVram: () => Promise<VramSnapshot>;
};

/**
 * Which GPU processes are the service's: on a one-service host any vLLM process (as before 0.5); among
 * several, those whose command line (or an ancestor's) names its config file or port.
 */
function ownProcessTest(spec: ServiceSpec, servicesOnHost: number): (p: GpuProcess) => boolean {
  if (servicesOnHost <= 1) return (p) => isVllmProcess(p);
  const port = Number(new URL(spec.settings.baseUrl).port) || null;
  return (p) => isProcessOfService(p, { configPath: spec.settings.configPath, port });
}

/** The host's measurement as one service sees it: its GPUs and the processes on them (all: the shortcut). */
function restrictTo(spec: ServiceSpec, isOwn: (p: GpuProcess) => boolean, host: VramSnapshot): VramSnapshot {
  return spec.gpus === null ? host : serviceVram(host, { gpus: spec.gpus, isOwn }).snapshot;
}

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
  const measureHost = createMeasureVram();
  const perService: ServiceActivities[] = services.map((spec) => {
    const isOwn = ownProcessTest(spec, services.length);
    // The adapter's measurement (the candidate's VRAM after its start) is the service's own GPUs too.
    const measureVram = async () => restrictTo(spec, isOwn, await measureHost());
    const adapter = vllmService(spec.settings, { measureVram });
    return {
      spec,
      measureVram,
      predictCandidates: createPredictCandidates({
        gpus: spec.gpus,
        isServiceProcess: isOwn,
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
    // A legacy id on a host without a legacy service (or without any): the host's GPUs, as before 0.5.
    measureVram: async (ref) =>
      ref?.service == null && !perService.some((s) => s.spec.legacyIds)
        ? measureHost()
        : serviceFor(perService, ref).measureVram(),
    predictCandidates: async (input) => serviceFor(perService, input).predictCandidates(input),
    runCanary: async (input) => serviceFor(perService, input).runCanary(input),
    restoreService: async (input) => serviceFor(perService, input).restoreService(input),
  };
}
