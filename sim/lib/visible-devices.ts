// CUDA_VISIBLE_DEVICES as the CUDA runtime reads it, over the simulated GPUs (indexes 0..count-1, UUIDs from
// simGpuUuid). From the CUDA C Programming Guide, "CUDA Environment Variables"
// (https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#env-vars): a comma-separated sequence
// of GPU identifiers, integer indices or UUID strings as nvidia-smi prints them (`GPU-8932f937-…`), where
// "enough digits from the beginning of the GPU UUID to uniquely identify that GPU" are enough; devices are
// enumerated in the order of the sequence; "if one of the indices is invalid, only the devices whose index
// precedes the invalid index are visible". Unset: every GPU; set but empty: none.
import { simGpuUuid } from './gpu-state.js';

/** The physical indexes of the visible GPUs, in CUDA's order (CUDA device i is `result[i]`). */
export function visibleGpus(count: number, cudaVisibleDevices: string | null | undefined): number[] {
  const all = Array.from({ length: count }, (_, i) => i);
  if (cudaVisibleDevices === undefined || cudaVisibleDevices === null) return all;
  const visible: number[] = [];
  for (const raw of cudaVisibleDevices.split(',')) {
    const entry = raw.trim();
    const index = resolveEntry(all, entry);
    if (index === null || visible.includes(index)) break; // CUDA stops at the first invalid entry
    visible.push(index);
  }
  return visible;
}

function resolveEntry(all: readonly number[], entry: string): number | null {
  if (/^\d+$/.test(entry)) {
    const n = Number(entry);
    return n < all.length ? n : null;
  }
  if (!/^GPU-[0-9a-f-]+$/i.test(entry)) return null; // no MIG devices are simulated
  const prefix = entry.toLowerCase();
  const matches = all.filter((i) => simGpuUuid(i).toLowerCase().startsWith(prefix));
  return matches.length === 1 ? matches[0]! : null;
}
