// The simulator's own settings (environment). Each bad value stops the process with one line naming the
// variable, the value and what is expected.
import { fileURLToPath } from 'node:url';
import { parseSimRelease, ReleaseError, type SimRelease } from './sim-release.js';

export interface SimSettings {
  /** Memory of each simulated GPU, MiB (nvidia-smi's memory.total; 81559 = H100 80GB). */
  gpuTotalMb: number;
  /** Memory used on each GPU by processes other than simulated vLLMs, MiB. */
  gpuOtherUsedMb: number;
  gpuCount: number;
  /** CUDA_VISIBLE_DEVICES as set (indexes or UUIDs of the simulated GPUs); null: unset, every GPU visible. */
  cudaVisibleDevices: string | null;
  gpuName: string;
  /** Time from process start until the port opens, ms (weights, profiling, graph capture). */
  startupMs: number;
  /** Transient allocation a request burst needs beyond vLLM's own budget, MiB. */
  runtimeSpikeMb: number;
  /** The Nth request that finds the headroom short of the spike raises the OOM (1 = the first). */
  oomAfterRequests: number;
  modelProfilePath: string;
  /** Where the simulated GPU state is written (read by the nvidia-smi stand-in); null: not written. */
  gpuStatePath: string | null;
  /** Background requests per second once ready. */
  loadRps: number;
  /** Time per generated token, ms (a completion of 16 tokens takes 16 × this). */
  tokenLatencyMs: number;
  /** The model's natural answer length: it "emits EOS" after this many tokens unless ignore_eos; 0 = never. */
  eosAfterTokens: number;
  /** GPU utilization reported while requests run. */
  busyUtilizationPct: number;
  /** The release played: its version in /version and the log, its wording of the start-up (startup-wording.ts). */
  vllmVersion: string;
  release: SimRelease;
  /** "(APIServer pid=N)" prefixes on log lines; null: as the release printed them (from 0.10). */
  logPrefix: boolean | null;
  /** Uvicorn access log lines per HTTP request. */
  accessLog: boolean;
  /** Interval of the "Engine 000: Avg prompt throughput" lines, ms; 0 = off. */
  statsIntervalMs: number;
  /** vLLM's escape hatch for max_model_len above the model's limit. */
  allowLongMaxModelLen: boolean;
}

export const DEFAULT_MODEL_PROFILE = fileURLToPath(new URL('../models/llama-3.1-8b.json', import.meta.url));

export class SettingsError extends Error {}

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, def: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  if (!/^\s*\d+\s*$/.test(raw) || Number(raw) < min) {
    throw new SettingsError(`${name}=${JSON.stringify(raw)} is not valid: expected a whole number ≥ ${min}`);
  }
  return Number(raw);
}

function numVar(env: Env, name: string, def: number, min: number, max = Infinity): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    const range = max === Infinity ? `≥ ${min}` : `between ${min} and ${max}`;
    throw new SettingsError(`${name}=${JSON.stringify(raw)} is not valid: expected a number ${range}`);
  }
  return n;
}

function boolVar(env: Env, name: string, def: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new SettingsError(
    `${name}=${JSON.stringify(raw)} is not valid: expected 1/0, true/false, yes/no or on/off`,
  );
}

function releaseVar(env: Env, name: string, def: string): SimRelease {
  const raw = strVar(env, name);
  try {
    return parseSimRelease(raw?.trim() ?? def);
  } catch (e) {
    if (e instanceof ReleaseError) {
      throw new SettingsError(`${name}=${JSON.stringify(raw)} is not valid: ${e.message}`);
    }
    throw e;
  }
}

function strVar(env: Env, name: string): string | null {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? null : raw;
}

export function readSimSettings(env: Env = process.env): SimSettings {
  const release = releaseVar(env, 'SIM_VLLM_VERSION', '0.10.1.1');
  return {
    gpuTotalMb: intVar(env, 'SIM_GPU_TOTAL_MB', 81559, 1),
    gpuOtherUsedMb: intVar(env, 'SIM_GPU_OTHER_USED_MB', 0, 0),
    gpuCount: intVar(env, 'SIM_GPU_COUNT', 1, 1),
    cudaVisibleDevices: env.CUDA_VISIBLE_DEVICES ?? null,
    gpuName: strVar(env, 'SIM_GPU_NAME') ?? 'NVIDIA H100 80GB HBM3',
    startupMs: intVar(env, 'SIM_STARTUP_MS', 8000, 0),
    runtimeSpikeMb: intVar(env, 'SIM_RUNTIME_SPIKE_MB', 2048, 0),
    oomAfterRequests: intVar(env, 'SIM_OOM_AFTER_REQUESTS', 1, 1),
    modelProfilePath: strVar(env, 'SIM_MODEL_PROFILE') ?? DEFAULT_MODEL_PROFILE,
    gpuStatePath: strVar(env, 'KLR_SIM_GPU_STATE'),
    loadRps: numVar(env, 'SIM_LOAD', 0, 0, 1000),
    tokenLatencyMs: numVar(env, 'SIM_TOKEN_LATENCY_MS', 2, 0, 10_000),
    eosAfterTokens: intVar(env, 'SIM_EOS_AFTER_TOKENS', 256, 0),
    busyUtilizationPct: Math.round(numVar(env, 'SIM_BUSY_UTILIZATION_PCT', 93, 0, 100)),
    vllmVersion: release.version,
    release,
    logPrefix: env.SIM_LOG_PREFIX?.trim() ? boolVar(env, 'SIM_LOG_PREFIX', true) : null,
    accessLog: boolVar(env, 'SIM_ACCESS_LOG', true),
    statsIntervalMs: intVar(env, 'SIM_STATS_INTERVAL_MS', 10_000, 0),
    allowLongMaxModelLen: boolVar(env, 'VLLM_ALLOW_LONG_MAX_MODEL_LEN', false),
  };
}
