// The start-up decisions that differ by release, beside the shared ones in engine.ts: what other processes'
// memory does to the KV cache (sim-release.ts, othersAccounting), how a KV cache too small for one request is
// refused and in which words, and whether allocating the cache fails on a GPU its budget thought free.
// Pure: the plan comes from the shared memory model (planMemory), these only read it.
import type { MemoryPlan, ServingConfig } from '../../src/domain/vllm-memory-model.js';
import { BLOCK_SIZE, kvBytesForMaxModelLen, kvCacheTokens } from './engine.js';
import { MiB } from './format.js';
import { othersAccounting, type SimRelease } from './sim-release.js';
import {
  maxSeqLenAboveKvTokens,
  noCacheBlocks,
  requestAboveKvCache,
  type Accounting,
} from './startup-wording.js';
import type { TorchOomInput } from './vllm-messages.js';

/**
 * The plan as the release measures it while other processes hold `othersMb` on the GPU: the releases that
 * charge them (V0 0.6.4.x, V1 0.8.0 – 0.9.0) count them as non-torch memory, so the KV cache shrinks by as
 * much; the others size the cache as if the GPU were free.
 */
export function accountedPlan(
  r: SimRelease,
  plan: MemoryPlan,
  serving: ServingConfig,
  othersMb: number,
): MemoryPlan {
  if (othersAccounting(r) !== 'charged' || othersMb <= 0) return plan;
  const kvCacheMb = plan.kvCacheMb - othersMb;
  const maxKvTokens = kvCacheMb > 0 ? Math.floor((kvCacheMb * MiB) / plan.kvBytesPerToken) : 0;
  return {
    ...plan,
    nonTorchMb: plan.nonTorchMb + othersMb,
    kvCacheMb,
    maxKvTokens,
    estimatedMaxModelLen: Math.min(serving.maxModelLen, Math.floor(maxKvTokens / BLOCK_SIZE) * BLOCK_SIZE),
  };
}

/**
 * The release's refusal of the KV cache, or null when one max-model-len request fits: V0 compares whole
 * blocks with max_model_len (worker.raise_if_cache_size_invalid), V1 the bytes one request needs with the
 * bytes available (kv_cache_utils.check_enough_kv_cache_memory).
 */
export function kvCacheRefusal(r: SimRelease, plan: MemoryPlan, serving: ServingConfig): string | null {
  if (r.engine === 'v0') {
    const tokens = kvCacheTokens(plan);
    if (tokens < BLOCK_SIZE) return noCacheBlocks(r);
    return serving.maxModelLen > tokens ? maxSeqLenAboveKvTokens(serving.maxModelLen, tokens) : null;
  }
  if (plan.kvCacheMb <= 0) return noCacheBlocks(r);
  const needed = kvBytesForMaxModelLen(plan, serving);
  const available = plan.kvCacheMb * MiB;
  if (needed <= available) return null;
  return requestAboveKvCache(r, serving.maxModelLen, needed, available, plan.estimatedMaxModelLen);
}

/**
 * Allocating the KV cache, layer by layer, on a GPU with `freeMb` free before the model loaded: PyTorch's
 * OOM when the releases that size the cache as if the GPU were free (V0 up to 0.6.3 and 0.6.5 – 0.7.x) find
 * less room than they planned. Null when it fits or the release accounted for the others already.
 */
export function kvAllocationOom(
  r: SimRelease,
  plan: MemoryPlan,
  layers: number,
  freeMb: number,
  gpuIndex: number,
): TorchOomInput | null {
  if (othersAccounting(r) !== 'physical' || plan.kvCacheMb <= 0) return null;
  const heldMb = plan.weightsMb + plan.nonTorchMb;
  const roomMb = freeMb - heldMb;
  if (plan.kvCacheMb <= roomMb) return null;
  const layerMb = plan.kvCacheMb / layers;
  const allocatedMb = Math.max(0, Math.floor(Math.max(0, roomMb) / layerMb)) * layerMb;
  return {
    gpuIndex,
    triedBytes: layerMb * MiB,
    totalBytes: plan.totalMb * MiB,
    freeBytes: Math.max(0, roomMb - allocatedMb) * MiB,
    otherProcesses: [],
    processInUseBytes: (heldMb + allocatedMb) * MiB,
    allocatedBytes: (plan.weightsMb + allocatedMb) * MiB,
    privatePoolBytes: 0,
    reservedUnallocatedBytes: 0,
  };
}

/**
 * The plan's figures as the release's profiling reports them. The plan may hold more in the budget than the
 * release has terms for (the CUDA-graph estimate where graphs are captured after the KV cache took its
 * share): that rest is reported with the activation peak, so the terms printed add up to what the plan
 * leaves for the KV cache.
 */
export function accountingOf(plan: MemoryPlan, utilization: number, profileSeconds: number): Accounting {
  const rest = plan.requestedMb - plan.kvCacheMb - plan.weightsMb - plan.activationPeakMb - plan.nonTorchMb;
  return {
    totalMb: plan.totalMb,
    utilization,
    requestedMb: plan.requestedMb,
    weightsMb: plan.weightsMb,
    activationMb: plan.activationPeakMb + rest,
    nonTorchMb: plan.nonTorchMb,
    kvCacheMb: plan.kvCacheMb,
    profileSeconds,
  };
}
