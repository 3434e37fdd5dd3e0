// The environments of the demo's worker and observer: the user's own, with the demo's settings and the
// demo host's services file on top (the one-service KLR_SERVICE_* / KLR_OBSERVER_* settings removed: the
// services file lists every service). The stand-in nvidia-smi goes on the worker's PATH only.
import { delimiter, join } from 'node:path';
import type { DemoHost } from './demo-service.js';
import { type DemoWindow, demoSettingsEnv } from './demo-plan.js';

type Env = Record<string, string | undefined>;

/** The one-service settings a services file replaces (the worker and the observer refuse some beside it). */
const SINGLE_SERVICE = [
  'KLR_SERVICE_NAME',
  'KLR_SERVICE_CONFIG',
  'KLR_SERVICE_RESTART_CMD',
  'KLR_SERVICE_URL',
  'KLR_SERVICE_LOG',
  'KLR_SERVICE_MODEL',
  'KLR_MODEL_PROFILE',
  'KLR_OBSERVER_FILE',
  'KLR_OBSERVER_COMMAND',
] as const;

function withoutSingleService(env: Env): Env {
  const out = { ...env };
  for (const k of SINGLE_SERVICE) delete out[k];
  return out;
}

export function demoWorkerEnv(
  base: Env,
  opts: { repoRoot: string; host: DemoHost; window: DemoWindow },
): Env {
  const env: Env = {
    ...withoutSingleService(base),
    ...demoSettingsEnv(opts.window),
    PATH: [join(opts.repoRoot, 'sim', 'bin'), base.PATH ?? ''].filter(Boolean).join(delimiter),
    KLR_SERVICES_FILE: opts.host.servicesFile,
    KLR_SIM_GPU_STATE: opts.host.gpuStatePath,
  };
  delete env.KLR_NVIDIA_SMI; // found on PATH: the stand-in
  return env;
}

export function demoObserverEnv(base: Env, opts: { host: DemoHost; demoDir: string }): Env {
  return {
    ...withoutSingleService(base),
    KLR_SERVICES_FILE: opts.host.servicesFile,
    // The logs are new on a first run and the observer keeps its positions across runs: read from the start.
    KLR_OBSERVER_FROM_START: '1',
    KLR_OBSERVER_STATE_DIR: join(opts.demoDir, 'observer'),
  };
}

/** Whether the observer has something to follow with the user's settings (else it would refuse to start). */
export function observerConfigured(env: Env): boolean {
  return Boolean(
    env.KLR_SERVICES_FILE?.trim() ||
    env.KLR_OBSERVER_FILE?.trim() ||
    env.KLR_SERVICE_LOG?.trim() ||
    env.KLR_OBSERVER_COMMAND?.trim() ||
    ['1', 'true', 'on', 'yes'].includes((env.KLR_HTTP_DOOR ?? '').trim().toLowerCase()),
  );
}
