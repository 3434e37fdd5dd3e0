// One log line → what it says about GPU memory, from the real message texts of PyTorch, vLLM (V0 and V1),
// cuBLAS, NCCL and the NVIDIA kernel driver. Pure and stateless: grouping lines into incidents is the
// detector's job (detector.ts).
import type { IncidentFamily } from './types.js';
import { SIZE_SOURCE, roundMib, toMib } from './sizes.js';

export type MemoryFamily = Exclude<IncidentFamily, 'engine_dead' | 'gpu_xid'>;

export interface Sizes {
  alloc?: number;
  total?: number;
  free?: number;
  deficit?: number;
  used?: number;
}

export type LineClass =
  /** A line that itself reports a GPU memory failure. */
  | { type: 'memory'; family: MemoryFamily; sizes: Sizes; gpu?: number; estimatedMaxModelLen?: number }
  /** vLLM's engine died; a memory incident only when a memory failure caused it. */
  | { type: 'engine_death' }
  /** The kernel driver's Xid report of a GPU fault. */
  | { type: 'xid'; xid: number; pci: string };

// Cheap pre-filter: every pattern below contains one of these words, so most lines cost one scan.
const CANDIDATE =
  /memory|CUBLAS_STATUS|Xid|EngineDead|EngineCore|Engine core|Engine loop|MQLLMEngine|max seq len|auto-?fit|Background loop/;

const SIZE = SIZE_SOURCE;
const NUM = String.raw`(\d+(?:\.\d+)?)`;

// PyTorch's caching allocator, torch ≥ 2.1 and the older "(GPU 0; 79.19 GiB total capacity; ...)" form.
const TORCH_OOM = /CUDA out of memory\.\s*(?:Tried to allocate|$)|OutOfMemoryError:\s*CUDA out of memory/;
const TORCH_TRIED = new RegExp(String.raw`Tried to allocate ${SIZE}`);
const TORCH_GPU = /\bGPU (\d+)(?: has a total capacity|;)/;
const TORCH_TOTAL_NEW = new RegExp(String.raw`total capacity of ${SIZE}`);
const TORCH_TOTAL_OLD = new RegExp(String.raw`${SIZE} total capacity`);
const TORCH_FREE_NEW = new RegExp(String.raw`of which ${SIZE} is free`);
const TORCH_FREE_OLD = new RegExp(String.raw`; ${SIZE} free`);
const TORCH_USED_NEW = new RegExp(String.raw`this process has ${SIZE} memory in use`);
const TORCH_USED_OLD = new RegExp(String.raw`${SIZE} reserved in total by PyTorch`);

const CUDA_ERROR_OOM = /CUDA (?:driver )?error: out of memory|CUDA_ERROR_OUT_OF_MEMORY/;
const CUBLAS_ALLOC =
  /CUBLAS_STATUS_ALLOC_FAILED|CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate\(handle\)`/;
const NCCL_ALLOC =
  /Cuda failure '?out of memory|ncclUnhandledCudaError.*out of memory|NCCL WARN.*Failed to CUDA (?:calloc|malloc)/;

// vllm/v1/worker/gpu_worker.py (and V0's worker.py): free memory at start-up below total × utilization.
const STARTUP_FREE = new RegExp(
  String.raw`Free memory on device \(${NUM}/${NUM} GiB\) on startup is less than desired GPU memory utilization \(${NUM}, ${NUM} GiB\)`,
);
const NO_CACHE_BLOCKS =
  /No available memory for the cache blocks|[Cc]annot auto-?fit\b.*(?:KV cache|max_model_len|memory)/;
// V0: "The model's max seq len (32768) is larger than the maximum number of tokens that can be stored in KV cache (12345)."
const KV_V0 =
  /The model's max seq len \((\d+)\) is larger than the maximum number of tokens that can be stored in KV cache \((\d+)\)/;
// V1: "To serve at least one request with the models's max seq len (131072), (16.00 GiB KV cache is needed, ..."
const KV_V1 = new RegExp(
  String.raw`To serve at least one request with the models?'s max seq len \((\d+)\),?\s*\(?${NUM} GiB KV cache is needed, which is larger than the available KV cache memory \(${NUM} GiB\)`,
);
const KV_ESTIMATE = /estimated maximum model length is (\d+)/;

const ENGINE_DEATH =
  /EngineDeadError|EngineCore encountered a fatal error|EngineCore failed to start|Engine core initialization failed|Engine loop has died|Engine loop is not running|MQLLMEngine is already dead|Background loop has errored already|AsyncEngineDeadError/;

const XID = /NVRM: Xid \((PCI:[0-9A-Fa-f:.]+)\): (\d+)/;

function size(re: RegExp, text: string): number | undefined {
  const m = re.exec(text);
  if (!m) return undefined;
  return toMib(Number(m[1]), m[2] as string) ?? undefined;
}

function defined(sizes: Sizes): Sizes {
  const out: Sizes = {};
  for (const [k, v] of Object.entries(sizes) as [keyof Sizes, number | undefined][])
    if (v !== undefined) out[k] = v;
  return out;
}

function torchOom(text: string): LineClass {
  const alloc = size(TORCH_TRIED, text);
  const total = size(TORCH_TOTAL_NEW, text) ?? size(TORCH_TOTAL_OLD, text);
  const free = size(TORCH_FREE_NEW, text) ?? size(TORCH_FREE_OLD, text);
  const used = size(TORCH_USED_NEW, text) ?? size(TORCH_USED_OLD, text);
  const deficit = alloc !== undefined && free !== undefined ? roundMib(Math.max(0, alloc - free)) : undefined;
  const gpu = TORCH_GPU.exec(text);
  return {
    type: 'memory',
    family: 'torch_oom',
    sizes: defined({ alloc, total, free, used, deficit }),
    ...(gpu ? { gpu: Number(gpu[1]) } : {}),
  };
}

/** What one line says, or null for the (vast majority of) lines that say nothing about GPU failures. */
export function classifyLine(text: string): LineClass | null {
  if (!CANDIDATE.test(text)) return null;
  if (TORCH_OOM.test(text)) return torchOom(text);
  let m = STARTUP_FREE.exec(text);
  if (m) {
    const [free, total, , requested] = [m[1], m[2], m[3], m[4]].map((g) => roundMib(Number(g) * 1024)) as [
      number,
      number,
      number,
      number,
    ];
    return {
      type: 'memory',
      family: 'startup_free_memory',
      sizes: { free, total, alloc: requested, deficit: roundMib(Math.max(0, requested - free)) },
    };
  }
  m = KV_V1.exec(text);
  if (m) {
    const needed = roundMib(Number(m[2]) * 1024);
    const available = roundMib(Number(m[3]) * 1024);
    const estimate = KV_ESTIMATE.exec(text);
    return {
      type: 'memory',
      family: 'kv_cache_too_small',
      sizes: { alloc: needed, free: available, deficit: roundMib(Math.max(0, needed - available)) },
      ...(estimate ? { estimatedMaxModelLen: Number(estimate[1]) } : {}),
    };
  }
  m = KV_V0.exec(text);
  if (m) {
    return { type: 'memory', family: 'kv_cache_too_small', sizes: {}, estimatedMaxModelLen: Number(m[2]) };
  }
  if (NO_CACHE_BLOCKS.test(text)) return { type: 'memory', family: 'no_cache_blocks', sizes: {} };
  if (CUBLAS_ALLOC.test(text)) return { type: 'memory', family: 'cublas_alloc', sizes: {} };
  if (NCCL_ALLOC.test(text)) return { type: 'memory', family: 'nccl_alloc', sizes: {} };
  if (CUDA_ERROR_OOM.test(text)) return { type: 'memory', family: 'cuda_error_oom', sizes: {} };
  m = XID.exec(text);
  if (m) return { type: 'xid', pci: m[1] as string, xid: Number(m[2]) };
  if (ENGINE_DEATH.test(text)) return { type: 'engine_death' };
  return null;
}

/** The same families as grep -E patterns (POSIX ERE), for the benchmark beside grep. */
export const GREP_PATTERNS: readonly string[] = [
  'CUDA out of memory',
  'CUDA (driver )?error: out of memory',
  'CUBLAS_STATUS_ALLOC_FAILED',
  "Cuda failure '?out of memory",
  'ncclUnhandledCudaError.*out of memory',
  'Free memory on device \\([0-9.]+/[0-9.]+ GiB\\) on startup is less than desired',
  'No available memory for the cache blocks',
  'max seq len \\([0-9]+\\) is larger than the maximum number of tokens',
  "To serve at least one request with the models?'s max seq len",
  'EngineDeadError|EngineCore encountered a fatal error|Engine loop has died',
  'NVRM: Xid \\(PCI:[0-9A-Fa-f:.]+\\): [0-9]+',
];
