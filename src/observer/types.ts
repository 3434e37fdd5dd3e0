// The seam between the observer's two halves: detection (sources → lines → incidents) and delivery
// (symptoms → Temporal, or the on-disk spool while Temporal is unreachable).
import type { SymptomInput } from '../domain/symptom.js';

/** Families of GPU incidents the detector recognises, from the real message texts. */
export type IncidentFamily =
  | 'torch_oom' // PyTorch CUDA caching allocator: "CUDA out of memory. Tried to allocate ..."
  | 'cuda_error_oom' // "CUDA error: out of memory" (driver-level allocation)
  | 'cublas_alloc' // CUBLAS_STATUS_ALLOC_FAILED / NOT_INITIALIZED from an allocation
  | 'nccl_alloc' // NCCL: Cuda failure 'out of memory' / ncclSystemError on allocation
  | 'startup_free_memory' // vLLM: free memory on device ... is less than desired GPU memory utilization
  | 'no_cache_blocks' // vLLM: No available memory for the cache blocks / cannot auto-fit
  | 'kv_cache_too_small' // vLLM: max seq len needs more KV cache than available (estimated maximum length)
  | 'cudnn_alloc' // cuDNN: CUDNN_STATUS_ALLOC_FAILED / NOT_INITIALIZED (an allocation at its start)
  | 'sglang_mem_fraction' // SGLang: not enough memory for the KV pool under --mem-fraction-static
  | 'tgi_prefill_tokens' // TGI: not enough memory to handle N prefill tokens (warm-up)
  | 'llamacpp_cuda_alloc' // ggml (llama.cpp, Ollama): cudaMalloc failed: out of memory
  | 'trtllm_cuda_alloc' // TensorRT-LLM (also under Triton): CUDA runtime error in …: out of memory
  | 'ollama_system_memory' // Ollama: the model needs more host memory than is available
  | 'engine_dead' // vLLM V1 EngineDeadError / engine core died, caused by one of the above
  | 'gpu_xid' // kernel NVRM: Xid — a GPU hardware/driver fault, never tuned by a config canary
  | 'gpu_fallen_off_bus' // kernel NVRM: the GPU has fallen off the bus (no Xid line)
  | 'gpu_rm_init_failed'; // kernel NVRM: RmInitAdapter failed — the GPU cannot be initialised

/** One incident: a traceback or a burst of repeats from several workers collapse into one. */
export interface Incident {
  /**
   * The symptom kind: for memory incidents the kind of the server whose log it is (`vllm_oom` unless the
   * observer is told otherwise, or the wording names another server), `gpu_xid` for GPU hardware faults.
   */
  kind: string;
  family: IncidentFamily;
  /** 1-based line number of the incident's first line in its source. */
  line: number;
  /** Where that line starts in its source (byte offset for files; line ordinal for streams). */
  position: number;
  /** Event time parsed from the log line when it carries one (ISO 8601 with zone), else null. */
  at: string | null;
  /** Sizes the message carried, normalised to MiB. */
  sizesMib: { alloc?: number; total?: number; free?: number; deficit?: number; used?: number };
  /** vLLM's estimated maximum model length, when it printed one. */
  estimatedMaxModelLen?: number;
  /** GPU index (or Xid PCI address's GPU when known). */
  gpu?: number;
  /** For engine_dead: the family of the memory incident that caused it. */
  cause?: IncidentFamily;
  /** Xid number for gpu_xid incidents. */
  xid?: number;
  /** PCI address of the faulty GPU (hardware incidents), when the line names one. */
  pci?: string;
  /** The matched text (the most telling line, trimmed). */
  text: string;
}

/** Where observed symptoms go. Implementations must be idempotent on `symptom.id`. */
export interface SymptomSink {
  /** Accepts a symptom durably (delivered, or spooled to disk) before it resolves. */
  deliver(symptom: SymptomInput & { id: string }): Promise<void>;
  /** Flushes what can be flushed and releases resources. */
  close(): Promise<void>;
}
