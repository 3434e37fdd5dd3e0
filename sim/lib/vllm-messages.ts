// The texts vLLM (V1 engine, 0.10 series) and PyTorch print when memory does not fit, rebuilt from the
// same inputs and with the same number formatting, so that anything that parses real vLLM logs parses
// the simulator's. Pure functions.
import { GiB, MiB, fixed, pyFloat, pyRound2, torchSize } from './format.js';

/** vllm/v1/worker/gpu_worker.py init_device: the free memory at start-up is below total × utilization. */
export function freeMemoryOnStartup(
  freeMb: number,
  totalMb: number,
  utilization: number,
  requestedMb: number,
): string {
  return (
    `Free memory on device (${pyRound2(freeMb / 1024)}/${pyRound2(totalMb / 1024)} GiB) on startup ` +
    `is less than desired GPU memory utilization (${pyFloat(utilization)}, ${pyRound2(requestedMb / 1024)} GiB). ` +
    `Decrease GPU memory utilization or reduce GPU memory used by other processes.`
  );
}

/** vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory: nothing left for the KV cache. */
export function noCacheBlocks(): string {
  return (
    'No available memory for the cache blocks. ' +
    'Try increasing `gpu_memory_utilization` when initializing the engine.'
  );
}

/** vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory: one max-length request does not fit. */
export function maxSeqLenTooLarge(
  maxModelLen: number,
  neededBytes: number,
  availableBytes: number,
  estimatedMaxModelLen: number,
): string {
  const estimated =
    estimatedMaxModelLen > 0
      ? `Based on the available memory, the estimated maximum model length is ${estimatedMaxModelLen}.`
      : '';
  return (
    `To serve at least one request with the models's max seq len (${maxModelLen}), ` +
    `(${fixed(neededBytes / GiB, 2)} GiB KV cache is needed, which is larger than the available KV cache ` +
    `memory (${fixed(availableBytes / GiB, 2)} GiB). ${estimated} ` +
    'Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.'
  );
}

/** vllm/config: a max_model_len above what the model's config.json allows. */
export function maxModelLenAboveDerived(maxModelLen: number, derived: number): string {
  return (
    `User-specified max_model_len (${maxModelLen}) is greater than the derived max_model_len ` +
    `(max_position_embeddings=${derived} or model_max_length=None in model's config.json). ` +
    'To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. ' +
    'VLLM_ALLOW_LONG_MAX_MODEL_LEN must be used with extreme caution. If the model uses relative position ' +
    'encoding (RoPE), positions exceeding derived_max_model_len lead to nan. If the model uses absolute ' +
    'position encoding, positions exceeding derived_max_model_len will cause a CUDA array out-of-bounds error.'
  );
}

/** vllm/config SchedulerConfig._verify_args. */
export function batchedTokensBelowSeqs(maxNumBatchedTokens: number, maxNumSeqs: number): string {
  return (
    `max_num_batched_tokens (${maxNumBatchedTokens}) must be greater than or equal to ` +
    `max_num_seqs (${maxNumSeqs}).`
  );
}

/** vllm/config ParallelConfig: more tensor-parallel ranks than GPUs (single node). */
export function worldSizeAboveGpus(worldSize: number, gpus: number): string {
  return `World size (${worldSize}) is larger than the number of available GPUs (${gpus}) in this node.`;
}

/** pydantic's message for CacheConfig.gpu_memory_utilization outside (0, 1]. */
export function utilizationValidation(value: number): string[] {
  const tooHigh = value > 1;
  return [
    '1 validation error for CacheConfig',
    'gpu_memory_utilization',
    tooHigh
      ? `  Input should be less than or equal to 1 [type=less_than_equal, input_value=${pyFloat(value)}, input_type=float]`
      : `  Input should be greater than 0 [type=greater_than, input_value=${pyFloat(value)}, input_type=float]`,
    `    For further information visit https://errors.pydantic.dev/2.11/v/${tooHigh ? 'less_than_equal' : 'greater_than'}`,
  ];
}

export interface TorchOomInput {
  gpuIndex: number;
  triedBytes: number;
  totalBytes: number;
  freeBytes: number;
  /** Other processes on the GPU that this process may see (pid and bytes). */
  otherProcesses: { pid: number; bytes: number }[];
  /** Everything this process holds on the GPU, including non-PyTorch memory. */
  processInUseBytes: number;
  allocatedBytes: number;
  /** CUDA-graph private pools; 0 leaves the clause out (enforce-eager). */
  privatePoolBytes: number;
  reservedUnallocatedBytes: number;
}

/** PyTorch's CUDACachingAllocator OutOfMemoryError text (torch ≥ 2.1), two spaces and all. */
export function torchOutOfMemory(i: TorchOomInput): string {
  const others = i.otherProcesses
    .map((p) => `Process ${p.pid} has ${torchSize(p.bytes)} memory in use. `)
    .join('');
  const pools =
    i.privatePoolBytes > 0
      ? `with ${torchSize(i.privatePoolBytes)} allocated in private pools (e.g., CUDA Graphs), `
      : '';
  return (
    `CUDA out of memory. Tried to allocate ${torchSize(i.triedBytes)}. ` +
    `GPU ${i.gpuIndex} has a total capacity of ${torchSize(i.totalBytes)} of which ${torchSize(i.freeBytes)} is free. ` +
    others +
    `Including non-PyTorch memory, this process has ${torchSize(i.processInUseBytes)} memory in use. ` +
    `Of the allocated memory ${torchSize(i.allocatedBytes)} is allocated by PyTorch, ${pools}` +
    `and ${torchSize(i.reservedUnallocatedBytes)} is reserved by PyTorch but unallocated. ` +
    'If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True ' +
    'to avoid fragmentation.  See documentation for Memory Management  ' +
    '(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)'
  );
}

export const ENGINE_DEAD_MESSAGE =
  'EngineCore encountered an issue. See stack trace (above) for the root cause.';

/** vllm/entrypoints/openai/serving_engine.py: prompt + max_tokens above max_model_len. */
export function contextTooLong(maxModelLen: number, promptTokens: number, completionTokens: number): string {
  return (
    `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
    `${promptTokens + completionTokens} tokens (${promptTokens} in the messages, ${completionTokens} in the ` +
    'completion). Please reduce the length of the messages or completion.'
  );
}

export function modelDoesNotExist(model: string): string {
  return `The model \`${model}\` does not exist.`;
}

/** vLLM's OpenAI-compatible error body (0.10 series). */
export function errorBody(message: string, type: string, code: number): string {
  return JSON.stringify({ object: 'error', message, type, param: null, code });
}

export { MiB, GiB };
