// The simulated GPU state file (KLR_SIM_GPU_STATE): what nvidia-smi would report on a host with the
// simulated GPUs. Written by each simulated vLLM when its memory changes, read by the nvidia-smi stand-in
// (sim/bin/nvidia-smi). Writes are atomic (temp file + rename). Several simulators may share one file:
// each keeps the other live processes' entries and drops the entries of processes that no longer exist
// (a SIGKILLed simulator cannot remove its own). A read-modify-write holds a lock file beside the state
// (`<path>.lock`, with its holder's pid) so that simulators starting at the same time lose no entry.
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { readProcStat } from '../../src/service/proc-info.js';
import { isProcessAlive } from '../../src/system/process-alive.js';

export interface GpuStateGpu {
  index: number;
  uuid: string;
  name: string;
  totalMb: number;
  usedMb: number;
  utilizationPct: number;
}

export interface GpuStateProcess {
  pid: number;
  name: string;
  usedMb: number;
  gpuUuid: string;
}

export interface GpuState {
  gpus: GpuStateGpu[];
  processes: GpuStateProcess[];
}

/** Stable, realistic-looking UUID of simulated GPU `index`. */
export function simGpuUuid(index: number): string {
  const tail = (0x1b2c3d4e5f60 + index).toString(16).padStart(12, '0');
  return `GPU-5f3c2a1e-8d4b-4c6e-9a7f-${tail}`;
}

/**
 * Whether a process can still hold GPU memory: it exists and is not a zombie (an exited process's CUDA
 * context is gone, and nvidia-smi no longer lists it, even before its parent or init reaps it).
 */
export function isAlive(pid: number): boolean {
  if (!isProcessAlive(pid)) return false;
  const state = readProcStat(pid)?.state;
  return state !== 'Z' && state !== 'X';
}

function isProcess(p: unknown): p is GpuStateProcess {
  const o = p as Record<string, unknown> | null;
  return (
    !!o &&
    typeof o.pid === 'number' &&
    typeof o.usedMb === 'number' &&
    typeof o.gpuUuid === 'string' &&
    typeof o.name === 'string'
  );
}

/** The state in the file, or null when there is none or it cannot be read. */
export function readGpuState(path: string): GpuState | null {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  try {
    const o = JSON.parse(raw) as Partial<GpuState>;
    return {
      gpus: Array.isArray(o.gpus) ? o.gpus : [],
      processes: Array.isArray(o.processes) ? o.processes.filter(isProcess) : [],
    };
  } catch {
    return null;
  }
}

export function writeGpuStateAtomic(path: string, state: GpuState): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, path);
}

/** This simulator's pids: its own, and with tensor parallelism one worker per rank. */
export type OwnPids = number | readonly number[];

const isOwn = (own: OwnPids, pid: number) => (typeof own === 'number' ? own === pid : own.includes(pid));

const LOCK_WAIT_MS = 2000;
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Runs `fn` holding `<path>.lock`. A lock whose holder is gone is taken over; one held longer than
 * {@link LOCK_WAIT_MS} too (a simulator stopped mid-write must not block the others for ever).
 */
export function withStateLock<T>(path: string, fn: () => T): T {
  mkdirSync(dirname(path), { recursive: true });
  const lock = `${path}.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder = '';
      try {
        holder = readFileSync(lock, 'utf8');
      } catch {
        continue; // released meanwhile
      }
      // An empty file is a lock being written: wait for it like any other.
      const stale = (/^\d+$/.test(holder) && !isAlive(Number(holder))) || Date.now() > deadline;
      if (stale) rmSync(lock, { force: true });
      else sleepSync(5);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** Live processes of other simulators (or entries put there by a test) found in the file. */
export function foreignProcesses(path: string | null, ownPids: OwnPids): GpuStateProcess[] {
  if (path === null) return [];
  const state = readGpuState(path);
  return (state?.processes ?? []).filter((p) => !isOwn(ownPids, p.pid) && isAlive(p.pid));
}

export interface GpuLayout {
  count: number;
  totalMb: number;
  name: string;
  /** Memory used by non-simulated processes on each GPU, MiB. */
  otherUsedMb: number;
}

/**
 * Writes this process's entries (replacing its old ones), keeping the live entries of others and
 * recomputing each GPU's used memory: other usage + every process entry on it.
 */
export function publishGpuState(
  path: string,
  layout: GpuLayout,
  ownPids: OwnPids,
  own: GpuStateProcess[],
  ownUtilizationPct: number,
): GpuState {
  return withStateLock(path, () => publishLocked(path, layout, ownPids, own, ownUtilizationPct));
}

function publishLocked(
  path: string,
  layout: GpuLayout,
  ownPids: OwnPids,
  own: GpuStateProcess[],
  ownUtilizationPct: number,
): GpuState {
  const previous = readGpuState(path);
  const others = (previous?.processes ?? []).filter((p) => !isOwn(ownPids, p.pid) && isAlive(p.pid));
  const processes = [...others, ...own];
  const gpus: GpuStateGpu[] = Array.from({ length: layout.count }, (_, index) => {
    const uuid = simGpuUuid(index);
    const used = processes.filter((p) => p.gpuUuid === uuid).reduce((sum, p) => sum + p.usedMb, 0);
    const mine = own.some((p) => p.gpuUuid === uuid);
    const othersThere = others.some((p) => p.gpuUuid === uuid);
    const before = previous?.gpus.find((g) => g.uuid === uuid)?.utilizationPct ?? 0;
    return {
      index,
      uuid,
      name: layout.name,
      totalMb: layout.totalMb,
      usedMb: Math.min(layout.totalMb, Math.round(layout.otherUsedMb + used)),
      utilizationPct: mine ? ownUtilizationPct : othersThere ? before : 0,
    };
  });
  const state = { gpus, processes };
  writeGpuStateAtomic(path, state);
  return state;
}

/** Drops entries of processes that no longer exist (used by the supervisor after a child dies). */
export function pruneDeadProcesses(path: string): void {
  withStateLock(path, () => pruneLocked(path));
}

function pruneLocked(path: string): void {
  const state = readGpuState(path);
  if (!state) return;
  const alive = state.processes.filter((p) => isAlive(p.pid));
  if (alive.length === state.processes.length) return;
  const gpus = state.gpus.map((g) => {
    const dropped = state.processes
      .filter((p) => !isAlive(p.pid) && p.gpuUuid === g.uuid)
      .reduce((sum, p) => sum + p.usedMb, 0);
    const stillThere = alive.some((p) => p.gpuUuid === g.uuid);
    return {
      ...g,
      usedMb: Math.max(0, g.usedMb - dropped),
      utilizationPct: stillThere ? g.utilizationPct : 0,
    };
  });
  writeGpuStateAtomic(path, { gpus, processes: alive });
}
