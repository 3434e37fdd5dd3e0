// One simulated GPU host for end-to-end heal tests: a vLLM config file, the simulated vLLM under its
// supervisor, and the production worker process with the settings that point at them, its maintenance
// window opening on a minute boundary 1-2 minutes from now. The dev server is the caller's.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pickFreePort } from '../../src/servers/dev-server.js';
import {
  NVIDIA_SMI_STAND_IN,
  type RealWorker,
  SIM_MODEL_PROFILE,
  type SimService,
  startRealWorker,
  startSimService,
  supervisorCommand,
} from './heal-stack.js';

export const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
export const SERVED = 'llama-3.1-8b';
const MINUTE = 60_000;

export interface ScenarioOptions {
  host: string;
  temporalAddress: string;
  /** vLLM config keys beyond model/served name/host/port. */
  serving: Record<string, string | number | boolean>;
  /** Simulator settings (SIM_*), e.g. a smaller GPU or a slower start. */
  sim?: Record<string, string>;
  /** The model profile the worker is given (default: the simulator's true one). */
  workerModelProfile?: string;
  /** Extra worker settings. */
  worker?: Record<string, string>;
  /** Open the window now instead of on the next minute boundary but one (no wait for the canary). */
  windowOpenNow?: boolean;
  /** Open the window on the first minute boundary at least this far ahead (default one minute). */
  windowLeadMs?: number;
}

export interface Scenario {
  dir: string;
  configPath: string;
  originalConfig: string;
  service: SimService;
  worker: RealWorker;
  windowOpensAt: number;
  window: string;
  /** The worker's settings, to start a replacement with the same ones. */
  workerEnv: Record<string, string>;
  /** Replace the worker (after a crash): same settings but `overrides` (undefined removes one). */
  restartWorker(overrides?: Record<string, string | undefined>): Promise<RealWorker>;
  stop(): Promise<void>;
}

const utcHhmm = (ms: number): string => new Date(ms).toISOString().slice(11, 16);

export async function startScenario(opts: ScenarioOptions): Promise<Scenario> {
  const dir = await mkdtemp(join(tmpdir(), `klr-${opts.host}-`));
  const port = await pickFreePort();
  const configPath = join(dir, 'vllm.yaml');
  const originalConfig = [
    `model: ${MODEL}`,
    `served-model-name: ${SERVED}`,
    'host: 127.0.0.1',
    `port: ${port}`,
    ...Object.entries(opts.serving).map(([k, v]) => `${k}: ${String(v)}`),
    '',
  ].join('\n');
  await writeFile(configPath, originalConfig);
  const gpuState = join(dir, 'gpu-state.json');
  const stateDir = join(dir, 'svc');
  const service = await startSimService({
    stateDir,
    configPath,
    port,
    env: { SIM_STARTUP_MS: '1000', ...opts.sim, KLR_SIM_GPU_STATE: gpuState, SIM_MODEL_PROFILE },
  });

  // The window opens on a minute boundary 1-2 minutes from now (or opened at the last one) and stays
  // open an hour (an end before the start crosses midnight, so 23:59-00:59 is fine as it is).
  const windowOpensAt = opts.windowOpenNow
    ? Math.floor(Date.now() / MINUTE) * MINUTE
    : Math.ceil((Date.now() + (opts.windowLeadMs ?? MINUTE)) / MINUTE) * MINUTE;
  const window = `${utcHhmm(windowOpensAt)}-${utcHhmm(windowOpensAt + 60 * MINUTE)}`;
  const workerEnv: Record<string, string> = {
    TEMPORAL_ADDRESS: opts.temporalAddress,
    KLR_HOST: opts.host,
    KLR_DATA_DIR: join(dir, 'data'),
    KLR_GPU_MAINTENANCE_TZ: 'UTC',
    KLR_GPU_MAINTENANCE_WINDOW: window,
    KLR_ESCALATION_FLAG_TTL: '0',
    KLR_CANARY_SOAK_SECONDS: '2',
    KLR_PREDICT_INTERVAL: '0',
    KLR_SERVICE_CONFIG: configPath,
    KLR_SERVICE_RESTART_CMD: JSON.stringify(supervisorCommand('restart', stateDir)),
    KLR_SERVICE_URL: service.baseUrl,
    KLR_SERVICE_LOG: service.logPath,
    KLR_NVIDIA_SMI: NVIDIA_SMI_STAND_IN,
    KLR_SIM_GPU_STATE: gpuState,
    KLR_MODEL_PROFILE: opts.workerModelProfile ?? SIM_MODEL_PROFILE,
    ...opts.worker,
  };
  let worker: RealWorker;
  try {
    worker = await startRealWorker(workerEnv);
  } catch (err) {
    await service.stop();
    throw err;
  }
  const scenario: Scenario = {
    dir,
    configPath,
    originalConfig,
    service,
    worker,
    windowOpensAt,
    window,
    workerEnv,
    async restartWorker(overrides = {}) {
      const env = { ...workerEnv, ...overrides };
      for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
      scenario.worker = await startRealWorker(env as Record<string, string>);
      return scenario.worker;
    },
    async stop() {
      await scenario.worker.stop();
      await service.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return scenario;
}

/** One completion request to the simulated service (the first one OOMs an over-aggressive config). */
export async function complete(baseUrl: string): Promise<Response> {
  return fetch(`${baseUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: SERVED, prompt: 'Hello', max_tokens: 4 }),
    signal: AbortSignal.timeout(10_000),
  });
}

const SIZE = String.raw`([\d.]+) (bytes|KiB|MiB|GiB)`;
const UNIT_MIB: Record<string, number> = { bytes: 1 / 1024 ** 2, KiB: 1 / 1024, MiB: 1, GiB: 1024 };
const toMib = (value: string | undefined, unit: string | undefined): number =>
  Math.round(Number(value) * (UNIT_MIB[unit ?? ''] ?? NaN));
const TORCH_OOM = new RegExp(
  String.raw`Tried to allocate ${SIZE}\. GPU (\d+) has a total capacity of ${SIZE} of which ${SIZE} is free`,
);

/** The symptom the observer would send for the simulator's PyTorch OOM line (sizes as torch prints them). */
export function torchOomDetails(oomLine: string) {
  const m = TORCH_OOM.exec(oomLine);
  if (!m) throw new Error(`unexpected OOM line: ${oomLine}`);
  const allocMb = toMib(m[1], m[2]);
  const freeMb = toMib(m[6], m[7]);
  return {
    family: 'torch_oom',
    allocMb,
    freeMb,
    deficitMb: Math.max(0, allocMb - freeMb),
    totalMb: toMib(m[4], m[5]),
    gpu: Number(m[3]),
    text: oomLine.slice(oomLine.indexOf('torch.OutOfMemoryError'), 2000),
  };
}
