// One service's share of a host-wide VRAM measurement. A GPU host runs several vLLM services (eight TP-1
// instances, two TP-4, a mix of models); each owns some GPUs, named as CUDA_VISIBLE_DEVICES names them.
// `serviceVram` restricts a host's `VramSnapshot` to one service: its GPUs (by index, by UUID or a UUID
// prefix, by MIG device), its own processes on them, the other processes on them ("neighbours", with their
// MiB) and everything else ("elsewhere"). What a person should know comes back as typed findings (a code and
// its parameters; `serviceVramFindingText` renders the words): a neighbour holding memory on one of the
// service's GPUs, a GPU the service names that the host lacks, a UUID prefix that names two GPUs, a
// tensor-parallel size above the service's GPU count. Pure: no Node, no Temporal.
import type { GpuMemory, GpuProcess, VramSnapshot } from './vram-snapshot.js';

/** One GPU as CUDA_VISIBLE_DEVICES names it: an index, or a UUID (`GPU-…`, `MIG-…`), possibly a prefix. */
export type GpuRef = number | string;

/** What the caller knows of the service. */
export interface ServiceVramInput {
  /** The service's GPUs in CUDA_VISIBLE_DEVICES order; null: every GPU of the host. */
  gpus: readonly GpuRef[] | null;
  /** Whether a GPU process is the service's own (its pid, or a descendant of its main process). */
  isOwn: (process: GpuProcess) => boolean;
  /** tensor-parallel-size of its config, when known: the GPUs it occupies are the first TP of its GPUs. */
  tensorParallelSize?: number | null;
}

/** One of the service's GPUs, resolved against the snapshot. */
export interface ServiceGpu {
  /** As the service names it. */
  ref: GpuRef;
  /** The physical GPU's row (for a MIG device: its parent's, whose memory covers all its instances). */
  gpu: GpuMemory;
  /** The MIG device, when the service names one; null for a whole GPU. */
  migDevice: string | null;
  /** MiB of the service's own processes on it (null entries count as 0; see `unknownMb`). */
  ownMb: number;
  /** MiB of neighbours on it. */
  neighbourMb: number;
}

/** A neighbour: a process that is not the service's, on one of the service's GPUs. */
export interface Neighbour {
  process: GpuProcess;
  gpuIndex: number;
  gpuUuid: string | null;
}

export interface ServiceVramTotals {
  /** Sums over the service's GPUs, each physical GPU once; null when a GPU does not report the figure. */
  totalMb: number | null;
  usedMb: number | null;
  freeMb: number | null;
  /** The smallest free memory of one of its GPUs: every tensor-parallel rank must fit on its own GPU. */
  minFreeMb: number | null;
  ownMb: number;
  neighbourMb: number;
}

/** Each finding's parameters, by code. */
export interface ServiceVramFindingParams {
  /** A process that is not the service's holds memory on one of its GPUs (usedMb null: not reported). */
  neighbour_on_gpu: {
    pid: number;
    processName: string | null;
    usedMb: number | null;
    gpuIndex: number;
    gpuUuid: string | null;
  };
  /** The service names a GPU the host does not have. */
  gpu_not_present: { ref: GpuRef; hostIndexes: number[] };
  /** A UUID prefix that matches more than one GPU (CUDA takes it as invalid). */
  gpu_ref_ambiguous: { ref: string; gpuIndexes: number[] };
  /** A MIG device in the newer `MIG-<uuid>` form: the snapshot lists parent GPUs only, so its GPU is unknown. */
  mig_device_unplaced: { ref: string; processes: number };
  /** A process of the service runs on a GPU that is not among its own (CUDA_VISIBLE_DEVICES not applied?). */
  own_process_outside: {
    pid: number;
    usedMb: number | null;
    gpuUuid: string | null;
    gpuIndex: number | null;
  };
  /** tensor-parallel-size needs more GPUs than the service has. */
  tensor_parallel_above_gpus: { tensorParallelSize: number; gpus: number };
}

export type ServiceVramFindingCode = keyof ServiceVramFindingParams;

export type ServiceVramFinding = {
  [K in ServiceVramFindingCode]: { code: K } & ServiceVramFindingParams[K];
}[ServiceVramFindingCode];

export interface ServiceVram {
  /** The host's snapshot restricted to the service: its GPUs (each once) and the processes on them. */
  snapshot: VramSnapshot;
  /** Its GPUs as it names them, in its order (refs that resolve to nothing are findings instead). */
  devices: ServiceGpu[];
  /** The GPUs the service's tensor-parallel ranks occupy (the first TP of `devices`; all when TP unknown). */
  rankDevices: ServiceGpu[];
  own: GpuProcess[];
  neighbours: Neighbour[];
  /** Processes on GPUs the service does not use, or on no GPU the snapshot can name. */
  elsewhere: GpuProcess[];
  totals: ServiceVramTotals;
  findings: ServiceVramFinding[];
}

const lower = (s: string) => s.trim().toLowerCase();

/** A process's GPU: the parent GPU's UUID when it can be told, and the MIG device when it names one. */
function processLocation(gpuUuid: string | null): { parent: string | null; mig: string | null } {
  if (gpuUuid === null) return { parent: null, mig: null };
  const u = lower(gpuUuid);
  // R450: MIG-GPU-<parent uuid>/<gi>/<ci>; R470+: MIG-<uuid of its own>.
  const old = /^mig-(gpu-[0-9a-f-]+)\/\d+\/\d+$/.exec(u);
  if (old) return { parent: old[1]!, mig: u };
  if (u.startsWith('mig-')) return { parent: null, mig: u };
  return { parent: u, mig: null };
}

type Resolved =
  | { kind: 'gpu'; gpu: GpuMemory; mig: string | null }
  | { kind: 'unplaced-mig'; mig: string }
  | { kind: 'missing' }
  | { kind: 'ambiguous'; matches: GpuMemory[] };

/** A UUID (or a prefix of one, as CUDA allows) among the snapshot's GPUs. */
function byUuidPrefix(gpus: readonly GpuMemory[], prefix: string): Resolved {
  const p = lower(prefix);
  const exact = gpus.filter((g) => g.uuid !== null && lower(g.uuid) === p);
  if (exact.length === 1) return { kind: 'gpu', gpu: exact[0]!, mig: null };
  const matches = gpus.filter((g) => g.uuid !== null && lower(g.uuid).startsWith(p));
  if (matches.length === 1) return { kind: 'gpu', gpu: matches[0]!, mig: null };
  return matches.length === 0 ? { kind: 'missing' } : { kind: 'ambiguous', matches };
}

function resolveRef(gpus: readonly GpuMemory[], ref: GpuRef): Resolved {
  if (typeof ref === 'number') {
    const gpu = gpus.find((g) => g.index === ref);
    return gpu ? { kind: 'gpu', gpu, mig: null } : { kind: 'missing' };
  }
  const text = ref.trim();
  if (/^\d+$/.test(text)) return resolveRef(gpus, Number(text));
  const loc = processLocation(text);
  if (loc.mig !== null && loc.parent !== null) {
    const parent = byUuidPrefix(gpus, loc.parent);
    return parent.kind === 'gpu' ? { ...parent, mig: loc.mig } : parent;
  }
  if (loc.mig !== null) return { kind: 'unplaced-mig', mig: loc.mig };
  return byUuidPrefix(gpus, text);
}

const mb = (v: number | null) => v ?? 0;

function sumOrNull(values: (number | null)[]): number | null {
  let sum = 0;
  for (const v of values) {
    if (v === null) return null;
    sum += v;
  }
  return sum;
}

/** Restricts a host-wide snapshot to one service. */
export function serviceVram(host: VramSnapshot, input: ServiceVramInput): ServiceVram {
  const findings: ServiceVramFinding[] = [];
  const hostIndexes = host.gpus.map((g) => g.index);
  const devices: ServiceGpu[] = [];
  const unplacedMigs: string[] = [];
  const refs: readonly GpuRef[] = input.gpus ?? host.gpus.map((g) => g.index);
  const seen = new Set<string>();
  for (const ref of refs) {
    const r = resolveRef(host.gpus, ref);
    if (r.kind === 'missing') {
      findings.push({ code: 'gpu_not_present', ref, hostIndexes });
    } else if (r.kind === 'ambiguous') {
      findings.push({
        code: 'gpu_ref_ambiguous',
        ref: String(ref),
        gpuIndexes: r.matches.map((g) => g.index),
      });
    } else if (r.kind === 'unplaced-mig') {
      unplacedMigs.push(r.mig);
    } else {
      const key = `${r.gpu.index}/${r.mig ?? ''}`;
      if (seen.has(key)) continue; // the same GPU named twice (an index and its UUID)
      seen.add(key);
      devices.push({ ref, gpu: r.gpu, migDevice: r.mig, ownMb: 0, neighbourMb: 0 });
    }
  }

  const tp = input.tensorParallelSize ?? null;
  const available = devices.length + unplacedMigs.length;
  if (tp !== null && tp > available) {
    findings.push({ code: 'tensor_parallel_above_gpus', tensorParallelSize: tp, gpus: available });
  }

  /** The service's device a process runs on, or null; 'unplaced' for one of its `MIG-<uuid>` devices. */
  const deviceOf = (p: GpuProcess): ServiceGpu | 'unplaced' | null => {
    const loc = processLocation(p.gpuUuid);
    if (loc.mig !== null && unplacedMigs.some((m) => loc.mig!.startsWith(m))) return 'unplaced';
    for (const d of devices) {
      const uuid = d.gpu.uuid === null ? null : lower(d.gpu.uuid);
      if (uuid === null || loc.parent !== uuid) continue;
      // A whole GPU holds all its MIG instances. A MIG device holds processes that name it, and those that
      // name only the parent (newer drivers report MIG processes under the parent's UUID: no telling apart).
      if (d.migDevice === null || loc.mig === null || loc.mig.startsWith(d.migDevice)) return d;
    }
    return null;
  };

  const own: GpuProcess[] = [];
  const neighbours: Neighbour[] = [];
  const elsewhere: GpuProcess[] = [];
  const unplacedCount = new Map<string, number>();
  for (const p of host.processes) {
    const d = deviceOf(p);
    const mine = input.isOwn(p);
    if (d === null) {
      elsewhere.push(p);
      if (mine) {
        const parent = processLocation(p.gpuUuid).parent;
        const gpu = host.gpus.find((g) => g.uuid !== null && lower(g.uuid) === parent);
        findings.push({
          code: 'own_process_outside',
          pid: p.pid,
          usedMb: p.usedMb,
          gpuUuid: p.gpuUuid,
          gpuIndex: gpu?.index ?? null,
        });
      }
      continue;
    }
    if (d === 'unplaced') {
      const m = unplacedMigs.find((u) => lower(p.gpuUuid ?? '').startsWith(u))!;
      unplacedCount.set(m, (unplacedCount.get(m) ?? 0) + 1);
      if (mine) own.push(p);
      else neighbours.push({ process: p, gpuIndex: -1, gpuUuid: p.gpuUuid });
      continue;
    }
    if (mine) {
      own.push(p);
      d.ownMb += mb(p.usedMb);
    } else {
      neighbours.push({ process: p, gpuIndex: d.gpu.index, gpuUuid: d.gpu.uuid });
      d.neighbourMb += mb(p.usedMb);
    }
  }
  for (const m of unplacedMigs) {
    findings.push({ code: 'mig_device_unplaced', ref: m, processes: unplacedCount.get(m) ?? 0 });
  }
  const named = [...neighbours]
    .filter((n) => n.process.usedMb !== 0)
    .sort((a, b) => mb(b.process.usedMb) - mb(a.process.usedMb) || a.process.pid - b.process.pid);
  for (const n of named) {
    findings.push({
      code: 'neighbour_on_gpu',
      pid: n.process.pid,
      processName: n.process.processName,
      usedMb: n.process.usedMb,
      gpuIndex: n.gpuIndex,
      gpuUuid: n.gpuUuid,
    });
  }

  // Each physical GPU once, even when the service holds two MIG instances of it.
  const gpus: GpuMemory[] = [];
  for (const d of devices) if (!gpus.includes(d.gpu)) gpus.push(d.gpu);
  const rankDevices = tp === null ? devices : devices.slice(0, tp);
  const frees = gpus.map((g) => g.freeMb);
  const totals: ServiceVramTotals = {
    totalMb: sumOrNull(gpus.map((g) => g.totalMb)),
    usedMb: sumOrNull(gpus.map((g) => g.usedMb)),
    freeMb: sumOrNull(frees),
    minFreeMb: frees.length === 0 || frees.some((f) => f === null) ? null : Math.min(...(frees as number[])),
    ownMb: own.reduce((s, p) => s + mb(p.usedMb), 0),
    neighbourMb: neighbours.reduce((s, n) => s + mb(n.process.usedMb), 0),
  };
  return {
    snapshot: {
      measuredAt: host.measuredAt,
      gpus,
      processes: host.processes.filter((p) => own.includes(p) || neighbours.some((n) => n.process === p)),
    },
    devices,
    rankDevices,
    own,
    neighbours,
    elsewhere,
    totals,
    findings,
  };
}

const mib = (v: number | null) => (v === null ? 'an unreported amount of memory' : `${v} MiB`);
const gpuName = (index: number, uuid: string | null) =>
  index >= 0 ? `GPU ${index}` : `MIG device ${uuid ?? '(unknown)'}`;

/** Ranges of consecutive indexes: [0, 1, 2, 3, 6] → "0-3, 6". */
function indexRanges(indexes: readonly number[]): string {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

/** The words a person reads for a finding; tools and tests match on `code`, never on this text. */
export function serviceVramFindingText(f: ServiceVramFinding): string {
  switch (f.code) {
    case 'neighbour_on_gpu':
      return `${f.processName ?? 'a process'} (pid ${f.pid}), not this service's, holds ${mib(f.usedMb)} on ${gpuName(f.gpuIndex, f.gpuUuid)}`;
    case 'gpu_not_present':
      return `gpu ${f.ref} not present: the host has ${f.hostIndexes.length === 0 ? 'no GPU' : indexRanges(f.hostIndexes)}`;
    case 'gpu_ref_ambiguous':
      return `gpu ${f.ref} is ambiguous: it is the start of the UUIDs of GPUs ${indexRanges(f.gpuIndexes)}`;
    case 'mig_device_unplaced':
      return `MIG device ${f.ref}: nvidia-smi names no parent GPU for it; its memory is not in this service's totals (${f.processes} process${f.processes === 1 ? '' : 'es'} on it)`;
    case 'own_process_outside':
      return `this service's process (pid ${f.pid}) holds ${mib(f.usedMb)} on ${f.gpuIndex === null ? `GPU ${f.gpuUuid ?? '(unknown)'}` : `GPU ${f.gpuIndex}`}, which is not one of its GPUs`;
    case 'tensor_parallel_above_gpus':
      return `tensor-parallel-size ${f.tensorParallelSize} needs ${f.tensorParallelSize} GPUs; the service has ${f.gpus}`;
  }
}
