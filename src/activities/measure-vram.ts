// The measureVram activity: what the GPUs of this host hold, read through nvidia-smi. It runs nvidia-smi
// twice (GPUs, compute processes) with argument arrays, never through a shell, each under a timeout.
import { ApplicationFailure } from '@temporalio/common';
import { ExecaError, execa } from 'execa';
import {
  APPS_QUERY_ARGS,
  GPU_QUERY_ARGS,
  NvidiaSmiError,
  type NvidiaSmiErrorCode,
  classifyNvidiaSmiFailure,
  parseComputeAppsCsv,
  parseGpuCsv,
} from '../gpu/nvidia-smi.js';
import { VRAM_UNAVAILABLE } from '../domain/failure-types.js';
import type { VramSnapshot } from './types.js';

/** ApplicationFailure type of a measurement that failed but may work when retried. */
export const NVIDIA_SMI_FAILED = 'NvidiaSmiFailed';

/** Failures that retrying will not fix: reported as non-retryable {@link VRAM_UNAVAILABLE}. */
export const VRAM_UNAVAILABLE_CODES: readonly NvidiaSmiErrorCode[] = Object.freeze([
  'not_installed',
  'no_devices',
  'driver_mismatch',
]);

export const DEFAULT_NVIDIA_SMI_TIMEOUT_MS = 10_000;

/** After the timeout's SIGTERM, how long nvidia-smi gets before SIGKILL. */
const KILL_GRACE_MS = 1_000;
/** After SIGKILL, how long to wait for it to be gone before giving up on it (a process stuck in the kernel). */
const ABANDON_AFTER_MS = 2_000;

export interface MeasureVramOptions {
  /** The nvidia-smi to run: a path or a name looked up on PATH. Default: KLR_NVIDIA_SMI, else "nvidia-smi". */
  nvidiaSmi?: string;
  /** Longest one nvidia-smi run may take, ms. Default 10000. */
  timeoutMs?: number;
}

function resolveOptions(opts: MeasureVramOptions): { command: string; timeoutMs: number } {
  const fromEnv = process.env.KLR_NVIDIA_SMI?.trim();
  const command = opts.nvidiaSmi ?? (fromEnv ? fromEnv : 'nvidia-smi');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_NVIDIA_SMI_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`measureVram: timeoutMs must be a positive number of ms, got ${timeoutMs}`);
  }
  return { command, timeoutMs };
}

/** nvidia-smi exits 14 when an infoROM is corrupted but still prints the data (and a WARNING line). */
function usable(error: { exitCode?: number; stdout: unknown; stderr: unknown }): boolean {
  return (
    error.exitCode === 14 && /infoROM is corrupted/i.test(`${String(error.stdout)}\n${String(error.stderr)}`)
  );
}

/** Run nvidia-smi once; its stdout, or the classified failure. */
async function runNvidiaSmi(command: string, args: readonly string[], timeoutMs: number): Promise<string> {
  const subprocess = execa(command, args, {
    timeout: timeoutMs,
    forceKillAfterDelay: KILL_GRACE_MS,
    stdin: 'ignore',
    stripFinalNewline: false,
    encoding: 'utf8',
  });
  // A process in uninterruptible sleep inside the driver survives SIGKILL; do not wait for it forever.
  let abandon: NodeJS.Timeout | undefined;
  const stuck = new Promise<'stuck'>((resolve) => {
    abandon = setTimeout(() => resolve('stuck'), timeoutMs + KILL_GRACE_MS + ABANDON_AFTER_MS);
  });
  try {
    const result = await Promise.race([subprocess, stuck]);
    if (result === 'stuck') {
      // Let it go: stop reading its output and stop waiting for it, so that this process can carry on or exit.
      subprocess.catch(() => undefined);
      subprocess.kill('SIGKILL');
      subprocess.stdout?.destroy();
      subprocess.stderr?.destroy();
      subprocess.unref();
      throw classifyNvidiaSmiFailure({
        exitCode: null,
        stdout: '',
        stderr: '',
        timedOut: true,
        notFound: false,
        command,
        timeoutMs,
      });
    }
    return result.stdout;
  } catch (err) {
    if (!(err instanceof ExecaError)) throw err;
    if (usable(err)) return String(err.stdout);
    throw classifyNvidiaSmiFailure({
      exitCode: err.exitCode ?? null,
      stdout: typeof err.stdout === 'string' ? err.stdout : '',
      stderr: typeof err.stderr === 'string' ? err.stderr : '',
      timedOut: err.timedOut,
      notFound: err.code === 'ENOENT',
      command,
      timeoutMs,
      signal: err.signal ?? null,
      spawnError: err.code !== undefined && err.code !== 'ENOENT' ? err.code : null,
    });
  } finally {
    clearTimeout(abandon);
  }
}

/**
 * Measure once: GPUs and compute processes. Throws {@link NvidiaSmiError} (for the CLI, `healctl vram`);
 * the activity wraps it in an ApplicationFailure.
 */
export async function measureVramOnce(opts: MeasureVramOptions = {}): Promise<VramSnapshot> {
  const { command, timeoutMs } = resolveOptions(opts);
  const measuredAt = new Date().toISOString();
  // Both at once: a stuck driver then costs one timeout, not two.
  const [gpuRun, appsRun] = await Promise.allSettled([
    runNvidiaSmi(command, GPU_QUERY_ARGS, timeoutMs),
    runNvidiaSmi(command, APPS_QUERY_ARGS, timeoutMs),
  ]);
  if (gpuRun.status === 'rejected') throw gpuRun.reason;
  if (appsRun.status === 'rejected') throw appsRun.reason;
  const gpus = parseGpuCsv(gpuRun.value);
  if (gpus.length === 0) {
    throw new NvidiaSmiError('no_devices', `${command} ran but listed no GPU: no NVIDIA GPU on this host`, 0);
  }
  const processes = parseComputeAppsCsv(appsRun.value);
  return { measuredAt, gpus, processes };
}

/** The ApplicationFailure the activity throws for a failed measurement. Other errors are returned as they are. */
export function toApplicationFailure(err: unknown): unknown {
  if (!(err instanceof NvidiaSmiError)) return err;
  const nonRetryable = VRAM_UNAVAILABLE_CODES.includes(err.code);
  return ApplicationFailure.create({
    message: err.message,
    type: nonRetryable ? VRAM_UNAVAILABLE : NVIDIA_SMI_FAILED,
    nonRetryable,
    details: [{ code: err.code, exitCode: err.exitCode }],
  });
}

/** The measureVram activity. */
export function createMeasureVram(opts: MeasureVramOptions = {}): () => Promise<VramSnapshot> {
  const resolved = resolveOptions(opts);
  return async function measureVram(): Promise<VramSnapshot> {
    try {
      return await measureVramOnce({ nvidiaSmi: resolved.command, timeoutMs: resolved.timeoutMs });
    } catch (err) {
      throw toApplicationFailure(err);
    }
  };
}
