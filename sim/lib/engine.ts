// The simulated engine's decisions, pure and deterministic: does a config start (and if not, with which of
// vLLM's errors), how large is the KV cache, and does a request burst run out of GPU memory.
//
// Memory comes from the shared model (planMemory): vLLM budgets total × gpu_memory_utilization and fills
// what weights, activations, non-torch memory and CUDA graphs leave with KV cache. At run time a burst
// needs SIM_RUNTIME_SPIKE_MB more than that budget (sampler/logits buffers, allocator fragmentation,
// NCCL and cuBLAS workspaces): when the GPU's headroom — total − others − budget — is smaller, PyTorch
// raises the OutOfMemoryError and the engine dies.
import type { MemoryPlan, ServingConfig } from '../../src/domain/vllm-memory-model.js';
import { MiB } from './format.js';
import type { SimModelProfile } from './serve-config.js';
import {
  batchedTokensBelowSeqs,
  freeMemoryOnStartup,
  maxModelLenAboveDerived,
  maxSeqLenTooLarge,
  noCacheBlocks,
  utilizationValidation,
  worldSizeAboveGpus,
  type TorchOomInput,
} from './vllm-messages.js';

/** vLLM's default KV block size on CUDA. */
export const BLOCK_SIZE = 16;

/** A config error vLLM raises while building its config, before the engine starts. */
export interface ConfigFailure {
  exception: 'ValueError' | 'pydantic_core._pydantic_core.ValidationError';
  lines: string[];
}

export function checkServingConfig(
  profile: SimModelProfile,
  serving: ServingConfig,
  gpuCount: number,
  allowLongMaxModelLen: boolean,
): ConfigFailure | null {
  const util = serving.gpuMemoryUtilization;
  if (!(util > 0 && util <= 1)) {
    return { exception: 'pydantic_core._pydantic_core.ValidationError', lines: utilizationValidation(util) };
  }
  const derived = profile.maxPositionEmbeddings;
  if (derived !== null && serving.maxModelLen > derived && !allowLongMaxModelLen) {
    return { exception: 'ValueError', lines: [maxModelLenAboveDerived(serving.maxModelLen, derived)] };
  }
  if (serving.maxNumBatchedTokens < serving.maxNumSeqs) {
    return {
      exception: 'ValueError',
      lines: [batchedTokensBelowSeqs(serving.maxNumBatchedTokens, serving.maxNumSeqs)],
    };
  }
  // The multiprocessing executor's check; with one rank there is none (a missing GPU fails in init_device).
  if (serving.tensorParallelSize > 1 && serving.tensorParallelSize > gpuCount) {
    return { exception: 'ValueError', lines: [worldSizeAboveGpus(serving.tensorParallelSize, gpuCount)] };
  }
  return null;
}

/** gpu_worker.init_device: free memory must cover the requested budget. Null when it does. */
export function checkFreeMemory(plan: MemoryPlan, freeMb: number, utilization: number): string | null {
  return freeMb < plan.requestedMb
    ? freeMemoryOnStartup(freeMb, plan.totalMb, utilization, plan.requestedMb)
    : null;
}

/**
 * Loading weights allocates physically, outside the budget: it fails only when the weights do not fit in
 * what is free on the GPU. Returns the PyTorch OOM of the layer that did not fit, or null.
 */
export function checkWeightsLoad(
  plan: MemoryPlan,
  profile: SimModelProfile,
  freeMb: number,
  gpuIndex: number,
): TorchOomInput | null {
  if (plan.weightsMb <= freeMb) return null;
  // The MLP projection of one layer: hidden × intermediate elements.
  const layerBytes = profile.hiddenSize * profile.intermediateSize * profile.dtypeBytes;
  const loadedBytes = Math.max(0, freeMb * MiB - layerBytes / 2);
  return {
    gpuIndex,
    triedBytes: layerBytes,
    totalBytes: plan.totalMb * MiB,
    freeBytes: Math.max(0, freeMb * MiB - loadedBytes),
    otherProcesses: [],
    processInUseBytes: loadedBytes,
    allocatedBytes: loadedBytes * 0.98,
    privatePoolBytes: 0,
    reservedUnallocatedBytes: loadedBytes * 0.02,
  };
}

/** Bytes of KV cache one request of max_model_len needs (vLLM rounds up to whole blocks). */
export function kvBytesForMaxModelLen(plan: MemoryPlan, serving: ServingConfig): number {
  return Math.ceil(serving.maxModelLen / BLOCK_SIZE) * BLOCK_SIZE * plan.kvBytesPerToken;
}

/** kv_cache_utils.check_enough_kv_cache_memory. Null when one max-length request fits. */
export function checkKvCache(plan: MemoryPlan, serving: ServingConfig): string | null {
  if (plan.kvCacheMb <= 0) return noCacheBlocks();
  const needed = kvBytesForMaxModelLen(plan, serving);
  const available = plan.kvCacheMb * MiB;
  if (needed > available) {
    return maxSeqLenTooLarge(serving.maxModelLen, needed, available, plan.estimatedMaxModelLen);
  }
  return null;
}

/** "GPU KV cache size: N tokens": whole blocks. */
export function kvCacheTokens(plan: MemoryPlan): number {
  return Math.max(0, Math.floor(plan.maxKvTokens / BLOCK_SIZE) * BLOCK_SIZE);
}

/** What is left on a GPU beyond this process's budget, MiB (may be negative when others grew). */
export function runtimeHeadroomMb(totalMb: number, othersMb: number, requestedMb: number): number {
  return totalMb - othersMb - requestedMb;
}

export interface RuntimeOomInput {
  plan: MemoryPlan;
  serving: ServingConfig;
  gpuIndex: number;
  othersMb: number;
  otherProcesses: { pid: number; usedMb: number }[];
  spikeMb: number;
}

/** The PyTorch OOM a request burst raises on this GPU, or null when the spike fits. */
export function runtimeOom(i: RuntimeOomInput): TorchOomInput | null {
  const headroom = runtimeHeadroomMb(i.plan.totalMb, i.othersMb, i.plan.requestedMb);
  if (headroom >= i.spikeMb) return null;
  const inUse = i.plan.requestedMb;
  const nonTorch = Math.max(0, i.plan.nonTorchMb);
  const reservedUnallocated = Math.max(0, Math.round(i.plan.activationPeakMb / 2));
  const allocated = Math.max(0, inUse - nonTorch - reservedUnallocated);
  return {
    gpuIndex: i.gpuIndex,
    triedBytes: i.spikeMb * MiB,
    totalBytes: i.plan.totalMb * MiB,
    freeBytes: Math.max(0, headroom) * MiB,
    otherProcesses: i.otherProcesses.map((p) => ({ pid: p.pid, bytes: p.usedMb * MiB })),
    processInUseBytes: inUse * MiB,
    allocatedBytes: allocated * MiB,
    privatePoolBytes: i.serving.enforceEager ? 0 : Math.max(0, i.plan.cudaGraphMb) * MiB,
    reservedUnallocatedBytes: reservedUnallocated * MiB,
  };
}
