// One log line → what it says about GPU memory or a GPU fault, from the real message texts of PyTorch,
// vLLM (V0 and V1, 0.5 → 0.2x), cuBLAS/cuDNN, NCCL, the NVIDIA kernel driver and the servers run beside
// vLLM (SGLang, TGI, llama.cpp/ggml and Ollama, TensorRT-LLM and Triton). Pure and stateless: grouping
// lines into incidents is the detector's job (detector.ts).
//
// Matching is keyed on anchors that stay stable across releases ("CUDA out of memory", "Free memory on
// device", "cudaMalloc failed: out of memory", "mem-fraction-static"...), not whole sentences, and tolerates
// what real logs put around them: process and stage prefixes ("(Worker pid=148)", "(EngineCore_0 pid=…)",
// "[Stage-0]", "[TP0]"), timestamps and log levels, colour codes, device names ("on device cuda:0"), units
// (GiB, MiB, GB), literal "\n" escapes when a whole traceback is one physical line (JSON logs, another
// server's panic), case changes ("CUDA Error") and error numbers ("Cuda failure 2 'out of memory'").
// The corpus these were checked against is test/fixtures/real-logs (public excerpts, with sources).
import type { IncidentFamily } from './types.js';
import { withoutEchoedInput } from '../domain/echoed-input.js';
import { SIZE_SOURCE, roundMib, toMib } from './sizes.js';

/** Families a hardware (kernel driver) line can have: never retuned by a config canary. */
export type HardwareFamily = 'gpu_xid' | 'gpu_fallen_off_bus' | 'gpu_rm_init_failed';
export type MemoryFamily = Exclude<IncidentFamily, 'engine_dead' | HardwareFamily>;

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
  /** The kernel driver reports a GPU fault: an Xid, a GPU off the bus, a GPU that failed to initialise. */
  | { type: 'hardware'; family: HardwareFamily; xid?: number; pci?: string };

// Cheap pre-filter: every rule below needs one of these words, so most lines cost one scan.
const CANDIDATE =
  /memory|CUBLAS_STATUS|CUDNN_STATUS|Xid|EngineDead|EngineCore|Engine core|Engine loop|MQLLMEngine|max seq len|auto-?fit|Background loop|off the bus|RmInitAdapter|rm_init_adapter|cudaMalloc|mem-fraction|prefill tokens|runtime error in/i;

const SIZE = SIZE_SOURCE;
const NUM = String.raw`(\d+(?:\.\d+)?)`;
const UNIT = String.raw`(GiB|GB|MiB|MB)`;

// PyTorch's caching allocator: torch ≥ 2.1 ("GPU 0 has a total capacity of …", 2.1 prints "capacty"), the
// older "(GPU 0; 79.19 GiB total capacity; …)", and the memory-fraction cap ("Allocation on device 0 would
// exceed allowed memory. (out of memory)", sizes on "Requested :" / "Device limit :" / "Free (according to
// CUDA):").
const TORCH_OOM =
  /CUDA out of memory\.(?:\s|\\n|$)|OutOfMemoryError:\s*CUDA out of memory|would exceed allowed memory\.?\s*\(out of memory\)/;
const TORCH_TRIED = new RegExp(String.raw`Tried to allocate ${SIZE}`);
const TORCH_GPU = /\bGPU (\d+)(?: has a total capac|;)|Allocation on device (\d+)/;
const TORCH_TOTAL_NEW = new RegExp(String.raw`total capac(?:i)?ty of ${SIZE}`);
const TORCH_TOTAL_OLD = new RegExp(String.raw`${SIZE} total capac(?:i)?ty`);
const TORCH_FREE_NEW = new RegExp(String.raw`of which ${SIZE} is free`);
const TORCH_FREE_OLD = new RegExp(String.raw`; ${SIZE} free`);
const TORCH_USED_NEW = new RegExp(String.raw`this process has ${SIZE} memory in use`);
const TORCH_USED_OLD = new RegExp(String.raw`${SIZE} reserved in total by PyTorch`);
const CAP_REQUESTED = new RegExp(String.raw`Requested\s*:\s*${SIZE}`);
const CAP_LIMIT = new RegExp(String.raw`Device limit\s*:\s*${SIZE}`);
const CAP_FREE = new RegExp(String.raw`Free \(according to CUDA\)\s*:\s*${SIZE}`);

// "CUDA error: out of memory", "CUDA Error: out of memory at …cumem_allocator.cpp", the driver API's
// CUDA_ERROR_OUT_OF_MEMORY, ROCm's "hipErrorOutOfMemory" / "ROCm error: out of memory".
const CUDA_ERROR_OOM =
  /(?:CUDA|HIP|ROCm) (?:driver )?error: out of memory|CUDA_ERROR_OUT_OF_MEMORY|hipErrorOutOfMemory/i;
const CUBLAS_ALLOC =
  /CUBLAS_STATUS_ALLOC_FAILED|CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate\(handle\)`/;
const CUDNN_ALLOC = /CUDNN_STATUS_ALLOC_FAILED|cuDNN error: CUDNN_STATUS_NOT_INITIALIZED/;
// NCCL: "Cuda failure 'out of memory'", "Cuda failure 2 'out of memory'" (2.26+), ncclUnhandledCudaError.
const NCCL_ALLOC =
  /Cuda failure (?:\d+ )?'?out of memory|ncclUnhandledCudaError.*out of memory|NCCL WARN.*Failed to CUDA (?:calloc|malloc)/;

// vLLM's start-up check (V1 0.9.1+; newer releases name the device: "on device cuda:0").
const STARTUP_FREE = new RegExp(
  String.raw`Free memory on device(?: [\w:]+)? \(${NUM}\s*/\s*${NUM} ${UNIT}\) on startup is less than desired GPU memory utilization \(${NUM}, ${NUM} ${UNIT}\)`,
);
const NO_CACHE_BLOCKS =
  /No available memory for the cache blocks|[Cc]annot auto-?fit\b.*(?:KV cache|max_model_len|memory)/;
// V0: "The model's max seq len (32768) is larger than the maximum number of tokens that can be stored in KV cache (12345)."
const KV_V0 =
  /max seq len \((\d+)\) is larger than the maximum number of tokens that can be stored in KV cache \((\d+)\)/;
// V1: "To serve at least one request with the models's max seq len (131072), (16.00 GiB KV cache is needed, ..."
const KV_V1 = new RegExp(
  String.raw`max seq len \((\d+)\),?\s*\(?${NUM} ${UNIT} KV cache is needed, which is larger than the available KV cache memory \(${NUM} ${UNIT}\)`,
);
const KV_ESTIMATE = /estimated maximum model length is (\d+)/;

// Servers beside vLLM.
// SGLang: "Not enough memory. Please try to increase --mem-fraction-static." / "Loaded weights leave no GPU
// memory for the KV cache under --mem-fraction-static=0.9."
const SGLANG_MEM_FRACTION =
  /(?:Not enough memory|no GPU memory for the KV cache|memory is not enough)[^\n]*--mem-fraction-static/;
// TGI: "Not enough memory to handle 4096 prefill tokens. You need to decrease `--max-batch-prefill-tokens`"
const TGI_PREFILL = /Not enough memory to handle (\d+) prefill tokens/;
// ggml (llama.cpp, Ollama, llama-cpp-python, Jan): "ggml_backend_cuda_buffer_type_alloc_buffer: allocating
// 45108.64 MiB on device 0: cudaMalloc failed: out of memory"; Ollama: "llama runner process has terminated:
// cudaMalloc failed: out of memory".
const GGML_ALLOC = /cudaMalloc failed: out of memory/;
const GGML_SIZE = new RegExp(String.raw`allocating ${SIZE} on device (\d+)`);
// TensorRT-LLM (also under Triton): "[TensorRT-LLM][ERROR] CUDA runtime error in ::cudaMallocAsync(…): out of
// memory (…tllmBuffers.h:112)", "CUDA runtime error in error: out of memory".
const TRTLLM_ALLOC = /CUDA runtime error in [^\n]*?: out of memory/;
// Ollama's pre-check of host memory (not the GPU's, but the server cannot load the model).
const OLLAMA_SYSTEM = new RegExp(
  String.raw`model requires more system memory \(${SIZE}\) than is available \(${SIZE}\)`,
);

const ENGINE_DEATH =
  /EngineDeadError|EngineCore encountered a fatal error|EngineCore failed to start|Engine core initialization failed|Engine loop has died|Engine loop is not running|MQLLMEngine is already dead|Background loop has errored already|AsyncEngineDeadError/;

// The kernel driver: "NVRM: Xid (PCI:0000:3b:00): 79, …" (and "Xid (0000:03:00): 14" of older drivers);
// "The NVIDIA GPU 0000:b3:00.0 … has fallen off the bus" without an Xid line; "RmInitAdapter failed!".
const XID = /NVRM: Xid \((?:PCI:)?([0-9A-Fa-f:.]+)\): (\d+)/;
const OFF_THE_BUS = /NVRM: .*fallen off the bus|NVRM: GPU [0-9A-Fa-f:.]+ .*off the bus/;
const RM_INIT = /NVRM: GPU ([0-9A-Fa-f:.]+): (?:RmInitAdapter failed|rm_init_adapter failed)/;
const PCI = /\b([0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}(?:\.\d)?)\b/;

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

const withDeficit = (sizes: Sizes): Sizes =>
  defined({
    ...sizes,
    deficit:
      sizes.alloc !== undefined && sizes.free !== undefined
        ? roundMib(Math.max(0, sizes.alloc - sizes.free))
        : sizes.deficit,
  });

function torchOom(text: string): LineClass {
  const alloc = size(TORCH_TRIED, text) ?? size(CAP_REQUESTED, text);
  const total = size(TORCH_TOTAL_NEW, text) ?? size(TORCH_TOTAL_OLD, text) ?? size(CAP_LIMIT, text);
  const free = size(TORCH_FREE_NEW, text) ?? size(TORCH_FREE_OLD, text) ?? size(CAP_FREE, text);
  const used = size(TORCH_USED_NEW, text) ?? size(TORCH_USED_OLD, text);
  const gpu = TORCH_GPU.exec(text);
  const index = gpu ? (gpu[1] ?? gpu[2]) : undefined;
  return {
    type: 'memory',
    family: 'torch_oom',
    sizes: withDeficit({ alloc, total, free, used }),
    ...(index !== undefined ? { gpu: Number(index) } : {}),
  };
}

const gib = (n: string | undefined, unit: string | undefined): number =>
  toMib(Number(n), unit ?? 'GiB') ?? roundMib(Number(n) * 1024);

function memory(family: MemoryFamily, sizes: Sizes = {}, gpu?: number): LineClass {
  return { type: 'memory', family, sizes, ...(gpu !== undefined ? { gpu } : {}) };
}

/** What one line says, or null for the (vast majority of) lines that say nothing about GPU failures. */
export function classifyLine(line: string): LineClass | null {
  if (!CANDIDATE.test(line)) return null;
  // What a caller sent (a prompt, a stop string, a generated text the server logs) is never read as a fault.
  const raw = withoutEchoedInput(line);
  if (raw !== line && !CANDIDATE.test(raw)) return null;
  // A traceback written into one physical line (a JSON log, another process's panic) keeps its newlines as
  // the two characters "\n": read them as the line breaks they were.
  const text = raw.includes('\\n') ? raw.replace(/\\r?\\n/g, '\n') : raw;
  let m = XID.exec(text);
  if (m) return { type: 'hardware', family: 'gpu_xid', pci: m[1] as string, xid: Number(m[2]) };
  m = RM_INIT.exec(text);
  if (m) return { type: 'hardware', family: 'gpu_rm_init_failed', pci: m[1] as string };
  if (OFF_THE_BUS.test(text)) {
    const pci = PCI.exec(text);
    return { type: 'hardware', family: 'gpu_fallen_off_bus', ...(pci ? { pci: pci[1] as string } : {}) };
  }
  if (TORCH_OOM.test(text)) return torchOom(text);
  m = STARTUP_FREE.exec(text);
  if (m) {
    const free = gib(m[1], m[3]);
    const total = gib(m[2], m[3]);
    const requested = gib(m[5], m[6]);
    return memory('startup_free_memory', {
      free,
      total,
      alloc: requested,
      deficit: roundMib(Math.max(0, requested - free)),
    });
  }
  m = KV_V1.exec(text);
  if (m) {
    const needed = gib(m[2], m[3]);
    const available = gib(m[4], m[5]);
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
  if (NO_CACHE_BLOCKS.test(text)) return memory('no_cache_blocks');
  if (GGML_ALLOC.test(text)) {
    const s = GGML_SIZE.exec(text);
    const alloc = s ? (toMib(Number(s[1]), s[2] as string) ?? undefined) : undefined;
    return memory('llamacpp_cuda_alloc', defined({ alloc }), s ? Number(s[3]) : undefined);
  }
  if (TRTLLM_ALLOC.test(text)) return memory('trtllm_cuda_alloc');
  if (SGLANG_MEM_FRACTION.test(text)) return memory('sglang_mem_fraction');
  m = TGI_PREFILL.exec(text);
  if (m) return memory('tgi_prefill_tokens');
  m = OLLAMA_SYSTEM.exec(text);
  if (m) {
    const needed = toMib(Number(m[1]), m[2] as string) ?? undefined;
    const available = toMib(Number(m[3]), m[4] as string) ?? undefined;
    return memory('ollama_system_memory', withDeficit(defined({ alloc: needed, free: available })));
  }
  if (CUBLAS_ALLOC.test(text)) return memory('cublas_alloc');
  if (CUDNN_ALLOC.test(text)) return memory('cudnn_alloc');
  if (NCCL_ALLOC.test(text)) return memory('nccl_alloc');
  if (CUDA_ERROR_OOM.test(text)) return memory('cuda_error_oom');
  if (ENGINE_DEATH.test(text)) return { type: 'engine_death' };
  return null;
}

/** The same families as grep -E patterns (POSIX ERE), for the benchmark beside grep. */
export const GREP_PATTERNS: readonly string[] = [
  'CUDA out of memory',
  'would exceed allowed memory',
  '(CUDA|HIP|ROCm) ([Dd]river )?[Ee]rror: out of memory',
  'CUBLAS_STATUS_ALLOC_FAILED',
  'CUDNN_STATUS_(ALLOC_FAILED|NOT_INITIALIZED)',
  "Cuda failure ([0-9]+ )?'?out of memory",
  'ncclUnhandledCudaError.*out of memory',
  'Free memory on device.* on startup is less than desired',
  'No available memory for the cache blocks',
  'max seq len \\([0-9]+\\) is larger than the maximum number of tokens',
  'max seq len \\([0-9]+\\),? *\\(?[0-9.]+ [GM]i?B KV cache is needed',
  'cudaMalloc failed: out of memory',
  'CUDA runtime error in .*: out of memory',
  'mem-fraction-static',
  'Not enough memory to handle [0-9]+ prefill tokens',
  'model requires more system memory',
  'EngineDeadError|EngineCore encountered a fatal error|Engine loop has died',
  'NVRM: Xid \\((PCI:)?[0-9A-Fa-f:.]+\\): [0-9]+',
  'fallen off the bus|RmInitAdapter failed|rm_init_adapter failed',
];
