// Model profiles the unit tests compute worked numbers with.
import type { ModelProfile, ServingConfig } from '../../src/domain/vllm-memory-model.js';

/**
 * Llama-3-8B-like: 32 layers, 32 query heads, 8 KV heads (GQA), head_dim 128, bf16, 15 317 MiB of
 * weights: 131 072 KV bytes per token; at 0.9 of 81 920 MiB its KV cache is 56 179.125 MiB (54.9 GiB).
 */
export const llama3_8b: ModelProfile = {
  name: 'llama-3-8b-like',
  layers: 32,
  attentionHeads: 32,
  kvHeads: 8,
  headDim: 128,
  hiddenSize: 4096,
  intermediateSize: 14336,
  vocabSize: 128256,
  dtypeBytes: 2,
  weightsMb: 15317,
};

/** vLLM's defaults with an 8k context: 0.9 utilization, 8192 batched tokens, 256 sequences, bf16 KV. */
export const serving8k: ServingConfig = {
  gpuMemoryUtilization: 0.9,
  maxModelLen: 8192,
  maxNumBatchedTokens: 8192,
  maxNumSeqs: 256,
  kvCacheDtype: 'auto',
  enforceEager: false,
  tensorParallelSize: 1,
};
