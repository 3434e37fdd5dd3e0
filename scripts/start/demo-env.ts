// The environments of the demo's worker and observer: the user's own, with the demo's settings and the
// simulated service's paths on top. The stand-in nvidia-smi goes on the worker's PATH only.
import { delimiter, join } from 'node:path';
import type { DemoService } from './demo-service.js';
import { type DemoWindow, demoSettingsEnv } from './demo-plan.js';

type Env = Record<string, string | undefined>;

export function demoWorkerEnv(
  base: Env,
  opts: { repoRoot: string; service: DemoService; window: DemoWindow },
): Env {
  const { service } = opts;
  const env: Env = {
    ...base,
    ...demoSettingsEnv(opts.window),
    PATH: [join(opts.repoRoot, 'sim', 'bin'), base.PATH ?? ''].filter(Boolean).join(delimiter),
    KLR_SERVICE_CONFIG: service.configPath,
    KLR_SERVICE_RESTART_CMD: JSON.stringify(service.restartCommand),
    KLR_SERVICE_URL: service.baseUrl,
    KLR_SERVICE_LOG: service.logPath,
    KLR_SIM_GPU_STATE: service.gpuStatePath,
    KLR_MODEL_PROFILE: service.modelProfile,
  };
  delete env.KLR_NVIDIA_SMI; // found on PATH: the stand-in
  return env;
}

export function demoObserverEnv(base: Env, opts: { service: DemoService; demoDir: string }): Env {
  return {
    ...base,
    KLR_OBSERVER_FILE: opts.service.logPath,
    // The log is new on a first run and the observer keeps its position across runs: read from the start.
    KLR_OBSERVER_FROM_START: '1',
    KLR_OBSERVER_STATE_DIR: join(opts.demoDir, 'observer'),
  };
}

/** Whether the observer has something to follow with the user's settings (else it would refuse to start). */
export function observerConfigured(env: Env): boolean {
  return Boolean(
    env.KLR_OBSERVER_FILE?.trim() ||
    env.KLR_SERVICE_LOG?.trim() ||
    env.KLR_OBSERVER_COMMAND?.trim() ||
    ['1', 'true', 'on', 'yes'].includes((env.KLR_HTTP_DOOR ?? '').trim().toLowerCase()),
  );
}
