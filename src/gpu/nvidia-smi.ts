// Reading nvidia-smi's CSV output, and naming its failures. Pure: no I/O here, so that every format quirk
// can be tested from recorded outputs (test/fixtures/nvidia-smi) without a GPU.
//
// nvidia-smi's CSV is not RFC 4180: values are joined with ", " and never quoted, so a free-text value that
// contains a comma (a product name, a process path) spills into extra columns. Each query below has exactly
// one free-text column, so a row is read from both ends: the fixed columns before it and after it are taken
// by position and whatever is left in the middle, commas included, is the free text.
import type { GpuMemory, GpuProcess } from '../domain/vram-snapshot.js';

/** `nvidia-smi` arguments for one row per physical GPU (MIG-enabled GPUs included, as their parent). */
export const GPU_QUERY_ARGS: readonly string[] = Object.freeze([
  '--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu',
  '--format=csv,noheader,nounits',
]);

/** `nvidia-smi` arguments for one row per compute process (processes on MIG devices name the parent GPU). */
export const APPS_QUERY_ARGS: readonly string[] = Object.freeze([
  '--query-compute-apps=pid,process_name,used_memory,gpu_uuid',
  '--format=csv,noheader,nounits',
]);

export type NvidiaSmiErrorCode =
  | 'not_installed'
  | 'no_devices'
  | 'driver_mismatch'
  | 'driver_unreachable'
  | 'timeout'
  | 'unparseable'
  | 'failed';

export class NvidiaSmiError extends Error {
  constructor(
    readonly code: NvidiaSmiErrorCode,
    message: string,
    /** nvidia-smi's exit code, when it ran and exited. */
    readonly exitCode: number | null = null,
  ) {
    super(message);
    this.name = 'NvidiaSmiError';
  }
}

/**
 * How nvidia-smi writes a value it does not have: `[N/A]` (not applicable, e.g. utilization under MIG),
 * `[Not Supported]` (GeForce, Jetson), `[Insufficient Permissions]` (a process name seen from a container),
 * `[Unknown Error]`, `[GPU is lost]`, ... Any bracketed text is such a marker; bare `N/A` is also used.
 */
function isMissing(value: string): boolean {
  return value === 'N/A' || value === '' || /^\[[^\]]*\]$/.test(value);
}

class RowError extends Error {}

function number(value: string, column: string): number | null {
  if (isMissing(value)) return null;
  if (!/^\d+(\.\d+)?$/.test(value)) throw new RowError(`${column} is ${JSON.stringify(value)}, not a number`);
  return Number(value);
}

function wholeNumber(value: string, column: string): number {
  if (!/^\d+$/.test(value)) throw new RowError(`${column} is ${JSON.stringify(value)}, not a whole number`);
  return Number(value);
}

function text(value: string): string | null {
  return isMissing(value) ? null : value;
}

/** GPU-<uuid>, MIG-<uuid> (R470+) or MIG-GPU-<uuid>/<gi>/<ci> (R450); null when not reported. */
function uuid(value: string, column: string): string | null {
  if (isMissing(value)) return null;
  if (!/^(GPU|MIG)-[0-9A-Za-z/-]+$/.test(value)) {
    throw new RowError(`${column} is ${JSON.stringify(value)}, not a GPU-… or MIG-… UUID`);
  }
  return value;
}

/**
 * Split one CSV row into `before` fixed columns, the free-text column, and `after` fixed columns.
 * The free text keeps its own commas and spacing exactly.
 */
function splitRow(
  line: string,
  before: number,
  after: number,
): { head: string[]; free: string; tail: string[] } {
  const parts = line.split(',');
  const expected = before + 1 + after;
  if (parts.length < expected) {
    throw new RowError(`expected ${expected} comma-separated values, found ${parts.length}`);
  }
  const head = parts.slice(0, before).map((p) => p.trim());
  const tail = parts.slice(parts.length - after).map((p) => p.trim());
  const free = parts
    .slice(before, parts.length - after)
    .join(',')
    .trim();
  return { head, free, tail };
}

/**
 * Lines that carry data. Not data: blank lines, trailing whitespace and CR (Windows), and nvidia-smi's own
 * warnings ("WARNING: infoROM is corrupted at gpu 0000:04:00.0"), which no data row can look like.
 */
function dataLines(output: string): { line: string; number: number }[] {
  return output
    .replace(/^\uFEFF/, '')
    .split('\n')
    .map((raw, i) => ({ line: raw.trimEnd(), number: i + 1 }))
    .filter(({ line }) => line.trim() !== '' && !/^\s*WARNING:/.test(line));
}

function parseRows<T>(output: string, what: string, parseLine: (line: string) => T): T[] {
  return dataLines(output).map(({ line, number: lineNumber }) => {
    try {
      return parseLine(line.trim());
    } catch (err) {
      if (!(err instanceof RowError)) throw err;
      throw new NvidiaSmiError(
        'unparseable',
        `nvidia-smi output is not the expected ${what}: line ${lineNumber} ${JSON.stringify(line)}: ${err.message}`,
      );
    }
  });
}

/** Parse the output of `nvidia-smi` with {@link GPU_QUERY_ARGS}: one GpuMemory per line. */
export function parseGpuCsv(output: string): GpuMemory[] {
  return parseRows(output, `${GPU_QUERY_ARGS[0]} CSV`, (line) => {
    const { head, free, tail } = splitRow(line, 2, 4);
    const [index = '', id = ''] = head;
    const [total = '', used = '', freeMb = '', utilization = ''] = tail;
    return {
      index: wholeNumber(index, 'index'),
      uuid: uuid(id, 'uuid'),
      name: text(free),
      totalMb: number(total, 'memory.total'),
      usedMb: number(used, 'memory.used'),
      freeMb: number(freeMb, 'memory.free'),
      utilizationPct: number(utilization, 'utilization.gpu'),
    };
  });
}

/** Parse the output of `nvidia-smi` with {@link APPS_QUERY_ARGS}: one GpuProcess per line. */
export function parseComputeAppsCsv(output: string): GpuProcess[] {
  // Some nvidia-smi builds answer an empty process list with this sentence instead of nothing.
  if (/^\s*No running (compute )?processes found\s*$/i.test(output)) return [];
  return parseRows(output, `${APPS_QUERY_ARGS[0]} CSV`, (line) => {
    const { head, free, tail } = splitRow(line, 1, 2);
    const [pid = ''] = head;
    const [usedMb = '', gpuUuid = ''] = tail;
    return {
      pid: wholeNumber(pid, 'pid'),
      processName: text(free),
      usedMb: number(usedMb, 'used_memory'),
      gpuUuid: uuid(gpuUuid, 'gpu_uuid'),
    };
  });
}

export interface NvidiaSmiRun {
  /** Exit code; null when it did not exit by itself (killed, never started). */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** It was killed because it ran past the timeout. */
  timedOut: boolean;
  /** The executable was not found (ENOENT). */
  notFound: boolean;
  /** What was run, for messages: the KLR_NVIDIA_SMI value or "nvidia-smi". */
  command?: string;
  /** The timeout it ran under, ms, for messages. */
  timeoutMs?: number;
  /** The signal that ended it, if any. */
  signal?: string | null;
  /** A system error code from starting it other than ENOENT (EACCES, ...). */
  spawnError?: string | null;
}

// nvidia-smi prints its own failures on stdout, not stderr, so both are searched. Exit codes are NVML's
// return codes (nvidia-smi(1), RETURN VALUE): 6 not found, 9 driver not loaded, 12 NVML library not found,
// 18 NVML_ERROR_LIB_RM_VERSION_MISMATCH.
const DRIVER_MISMATCH = /Driver\/library version mismatch/i;
const DRIVER_UNREACHABLE = /couldn't communicate with the NVIDIA driver/i;
const NO_DEVICES = /No devices were found/i;
const NVML_MISSING = /couldn't find libnvidia-ml\.so|NVML Shared Library couldn't be found/i;

function firstLine(s: string): string {
  return (
    s
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? ''
  );
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** Name what went wrong with one nvidia-smi run that did not produce usable output. */
export function classifyNvidiaSmiFailure(run: NvidiaSmiRun): NvidiaSmiError {
  const command = run.command ?? 'nvidia-smi';
  const custom = command !== 'nvidia-smi';
  const output = `${run.stdout}\n${run.stderr}`;
  const exit = run.exitCode;

  if (run.notFound) {
    return new NvidiaSmiError(
      'not_installed',
      custom
        ? `nvidia-smi not found at ${JSON.stringify(command)} (KLR_NVIDIA_SMI): set KLR_NVIDIA_SMI to the path of nvidia-smi, or unset it to use the one on PATH`
        : 'nvidia-smi not found on PATH: install the NVIDIA driver utilities, or set KLR_NVIDIA_SMI to its path',
    );
  }
  if (run.timedOut) {
    const limit = run.timeoutMs === undefined ? 'in time' : `within ${seconds(run.timeoutMs)}`;
    return new NvidiaSmiError(
      'timeout',
      `${command} did not answer ${limit} and was killed: the driver may be busy or stuck ` +
        '(a GPU that fell off the bus, an Xid error); check `dmesg` for NVRM messages',
    );
  }
  if (run.spawnError) {
    return new NvidiaSmiError(
      'failed',
      `${command} could not be started (${run.spawnError})${run.spawnError === 'EACCES' ? ': is it executable?' : ''}`,
    );
  }
  if (DRIVER_MISMATCH.test(output) || exit === 18) {
    return new NvidiaSmiError(
      'driver_mismatch',
      'nvidia-smi: "Failed to initialize NVML: Driver/library version mismatch": the NVIDIA driver was ' +
        'upgraded but the old kernel module is still loaded; reboot the host, or reload the nvidia kernel ' +
        'modules (stop everything using the GPU, then `rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia` and `modprobe nvidia`)',
      exit,
    );
  }
  if (DRIVER_UNREACHABLE.test(output) || exit === 9) {
    return new NvidiaSmiError(
      'driver_unreachable',
      'nvidia-smi: "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver": the ' +
        'nvidia kernel module is not loaded or not answering; check `lsmod | grep nvidia` and `dmesg`, and ' +
        'make sure the NVIDIA driver is installed and running',
      exit,
    );
  }
  if (NVML_MISSING.test(output) || exit === 12) {
    return new NvidiaSmiError(
      'not_installed',
      `${command} runs but cannot load the NVML library (libnvidia-ml.so): the NVIDIA driver is not (fully) installed on this host`,
      exit,
    );
  }
  if (NO_DEVICES.test(output)) {
    return new NvidiaSmiError(
      'no_devices',
      'nvidia-smi: "No devices were found": the driver is loaded but sees no NVIDIA GPU on this host ' +
        '(or in this container: is it started with the GPUs?)',
      exit,
    );
  }
  const detail = firstLine(run.stderr) || firstLine(run.stdout);
  const how =
    exit !== null ? `exited with code ${exit}` : run.signal ? `was killed by ${run.signal}` : 'failed';
  return new NvidiaSmiError(
    'failed',
    `${command} ${how}${detail ? `: ${detail}` : ' without a message'}`,
    exit,
  );
}
