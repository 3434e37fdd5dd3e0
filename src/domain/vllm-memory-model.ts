// vLLM's GPU memory model, as vLLM itself sizes the KV cache at start-up. Pure: used by the predictor
// (which config would fit?) and by the simulated vLLM (does this config start, and does it OOM?).
//
//   requested      = total × gpu_memory_utilization
//   kv cache       = requested − weights − activation peak − non-torch − CUDA-graph estimate
//   kv bytes/token = 2 × layers × kv_heads / tensor_parallel × head_dim × dtype bytes  (fp8 KV: 1 byte)
//
// How vLLM (V1 engine) gets there, and what each term below stands for:
//
// - gpu_worker.init_device takes a memory snapshot and sets requested_memory = total × utilization; when
//   less than that is free it refuses to start ("Free memory on device ... on startup is less than desired
//   GPU memory utilization").
// - determine_available_memory loads the weights, runs profile_run (one forward pass over
//   max_num_batched_tokens dummy tokens, then the sampler over min(max_num_seqs, max_num_batched_tokens)
//   requests) and measures the torch peak increase (activations) and the non-torch increase; newer
//   releases also estimate the CUDA-graph pool (profile_cudagraph_memory) and take it off the budget.
//   What is left of requested_memory is the KV cache.
// - kv_cache_utils turns those bytes into blocks of 16 tokens: page = 2 (K and V) × block × kv heads per
//   rank × head size × dtype bytes per layer. A max_model_len request needs cdiv(len, 16) blocks; when it
//   does not fit vLLM binary-searches the longest length that does and prints it
//   ("the estimated maximum model length is N").
//
// The activation, non-torch and CUDA-graph terms are estimates of what vLLM measures on a real GPU; each
// is documented where it is computed (and in docs/prediction.md, with the numbers it was checked against).
// They depend on the release (src/domain/vllm-release.ts): with the release known the plan follows its
// accounting; without it, the release-blind "conservative" plan (the graphs and the CUDA context inside
// the budget, the heaviest sampler), which errs towards less KV cache for V1 releases (−2 to −13 % on the
// real reports, bench/results/prediction.md) but is off either way for V0 ones.
import { type Accounting, type VllmRelease, releaseRules } from './vllm-release.js';

/** What the model is, independent of how it is served. Comes from the model's config.json / a profile. */
export interface ModelProfile {
  /** Served model name (for the probe request and messages). */
  name: string;
  layers: number;
  /** Attention heads (query). */
  attentionHeads: number;
  /** Key/value heads (GQA); equals attentionHeads for MHA. */
  kvHeads: number;
  headDim: number;
  hiddenSize: number;
  intermediateSize: number;
  vocabSize: number;
  /** Bytes per weight/activation element of the model dtype (bf16/fp16 = 2, fp32 = 4). */
  dtypeBytes: number;
  /** Total weight bytes as MiB (e.g. from model.safetensors.index.json metadata.total_size). */
  weightsMb: number;
  /**
   * `pooling`: an embedding/classification model (its profiling run pools, it never samples);
   * `multimodal`: its profiling run also runs a vision/audio encoder this model does not size. Absent: a
   * text decoder.
   */
  kind?: 'decoder' | 'pooling' | 'multimodal';
}

/** The vLLM serving knobs that matter for memory (the YAML keys of `vllm serve --config`). */
export interface ServingConfig {
  gpuMemoryUtilization: number; // gpu-memory-utilization, default 0.9
  maxModelLen: number; // max-model-len
  maxNumBatchedTokens: number; // max-num-batched-tokens
  maxNumSeqs: number; // max-num-seqs, default 256
  kvCacheDtype: 'auto' | 'fp8' | 'fp8_e4m3' | 'fp8_e5m2'; // kv-cache-dtype
  enforceEager: boolean; // enforce-eager
  tensorParallelSize: number; // tensor-parallel-size
}

/** The `vllm serve` option (YAML key, dashed spelling) of each ServingConfig field, in display order. */
export const SERVING_KEYS = {
  gpuMemoryUtilization: 'gpu-memory-utilization',
  maxModelLen: 'max-model-len',
  maxNumBatchedTokens: 'max-num-batched-tokens',
  maxNumSeqs: 'max-num-seqs',
  kvCacheDtype: 'kv-cache-dtype',
  enforceEager: 'enforce-eager',
  tensorParallelSize: 'tensor-parallel-size',
} as const satisfies Record<keyof ServingConfig, string>;

export type ServingKey = (typeof SERVING_KEYS)[keyof ServingConfig];

/** What a plan needs beyond the model and the config. */
export interface PlanOptions {
  /** The release the service runs; absent or null: the conservative plan. */
  release?: VllmRelease | null;
  /** Other processes on the GPU, MiB: charged to the KV cache by the releases that count them. */
  othersMb?: number;
}

export interface MemoryPlan {
  /** The release whose accounting the plan follows; null: the conservative plan. */
  release: string | null;
  accounting: Accounting | 'conservative';
  totalMb: number;
  requestedMb: number;
  weightsMb: number; // per GPU (weights / tensor_parallel)
  activationPeakMb: number;
  nonTorchMb: number;
  cudaGraphMb: number;
  kvCacheMb: number; // may be ≤ 0: "No available memory for the cache blocks"
  kvBytesPerToken: number; // per GPU
  maxKvTokens: number; // floor(kvCacheMb MiB / kvBytesPerToken), 0 when kvCacheMb ≤ 0
  /** vLLM's estimate of the longest max_model_len that fits (what vLLM prints). */
  estimatedMaxModelLen: number;
  /** Whether `cudaGraphMb` is inside `requestedMb` (taken off the KV cache) or beside it. */
  cudaGraphsInBudget: boolean;
  /**
   * What the process holds beyond `requestedMb` once it runs, MiB: the CUDA context where the accounting
   * leaves it out, and the CUDA graphs where they are captured after the KV cache took its share.
   */
  outsideBudgetMb: number;
  /** Why the KV cache cannot be predicted for this model (it must be measured), or null. */
  unpredictable: string | null;
}

export const MiB = 1024 * 1024;

/** vLLM's default KV cache block size on CUDA, tokens. */
export const KV_BLOCK_SIZE = 16;

/**
 * Non-torch memory of one rank, MiB: the CUDA context and cuBLAS/attention workspaces (vLLM measures
 * ≈ 0.13 GiB of non-torch increase on an H100 at TP=1, on top of a CUDA context of ≈ 0.3–0.4 GiB that is
 * also inside the process), rounded up to 512 MiB.
 */
export const NON_TORCH_BASE_MB = 512;
/** Extra non-torch memory per rank with tensor parallelism: NCCL and custom all-reduce buffers (≈ 0.42 GiB measured at TP=2). */
export const NON_TORCH_TP_EXTRA_MB = 512;

/**
 * The sampler's buffers during the profiling run, bytes per (request × vocabulary entry) on top of the
 * logits in the model dtype: the fp32 copy of the logits, top-k/top-p sort values (fp32) and indices
 * (int64 = two fp32 slots), the cumulative-probability buffer, the logits scattered back, the softmax
 * probabilities, the exponential noise and the quotient: nine fp32-sized buffers. vLLM's measured torch
 * peak increase (≈ 4.76 GiB for Llama-3.1-8B, 5.56 GiB for Qwen3-0.6B, 7.38 GiB for gpt-oss-20b at
 * max_num_seqs 1024) is 38–39 bytes per request × vocab entry in all three, so this term dominates.
 */
export const SAMPLER_FP32_BUFFERS = 9;

/** CUDA-graph pool per captured graph and layer, MiB (≈ 0.5 GiB for an 8B model with 67 sizes). */
export const CUDA_GRAPH_MB_PER_LAYER_PER_SIZE = 0.25;

/**
 * Non-torch growth of one rank in a release's profiling run, MiB (cuBLAS and attention workspaces,
 * torch.compile): vLLM measured 0.24–0.27 GiB at TP = 1 on 0.18/0.19 (0.13 on 0.15–0.17), 0.03 on V0 0.7.
 */
export const NON_TORCH_GROWTH_MB = { v0: 64, v1: 256 } as const;
/**
 * Non-torch memory of a tensor-parallel rank, MiB: NCCL and custom all-reduce buffers. 2.07–2.21 GiB on
 * H100s (NVLink: custom all-reduce on) at TP 2–4, 0.25–0.3 GiB on 4090s and L40Ss (PCIe: it stays off).
 */
export const NON_TORCH_TP_MB = { nvlinkClass: 2150, pcie: 300 } as const;
/** The CUDA context, MiB: 0.51 GiB at an H100's first snapshot, ≈ 0.3 GiB on a 3090. */
export const CUDA_CONTEXT_MB = { large: 512, small: 300 } as const;
/** GPUs from this size (MiB) are taken to be the NVLink datacenter class (A100/H100/H200/B200). */
const LARGE_GPU_MB = 70 * 1024;

/** The terms a plan is made of: a release's rules, or the conservative ones. */
interface PlanRules {
  samplerExtraBytes: number;
  samplerWithChunkedPrefill: boolean;
  forwardHiddenBuffers: number;
  cudaGraphsInBudget: boolean;
  graphsPerSize: number;
}

/** Without a release: the heaviest sampler, four hidden buffers, the graphs in the budget. */
const CONSERVATIVE: PlanRules = {
  samplerExtraBytes: 4 * SAMPLER_FP32_BUFFERS,
  samplerWithChunkedPrefill: true,
  forwardHiddenBuffers: 4,
  cudaGraphsInBudget: true,
  graphsPerSize: 1,
};
/** vLLM's cap on the largest captured batch size (max_cudagraph_capture_size = min(2 × max_num_seqs, 512)). */
export const CUDA_GRAPH_MAX_CAPTURE = 512;

function assertPositive(what: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0)
    throw new RangeError(`${what} must be a positive number, got ${value}`);
}

/** The numeric shape fields of a model profile, each a positive number. */
export const MODEL_SHAPE_FIELDS = [
  'layers',
  'attentionHeads',
  'kvHeads',
  'headDim',
  'hiddenSize',
  'intermediateSize',
  'vocabSize',
  'dtypeBytes',
] as const;

function check(model: ModelProfile, config: ServingConfig, gpuTotalMb: number): void {
  for (const key of MODEL_SHAPE_FIELDS) {
    assertPositive(`model.${key}`, model[key]);
  }
  if (!Number.isFinite(model.weightsMb) || model.weightsMb < 0) {
    throw new RangeError(`model.weightsMb must be a number ≥ 0, got ${model.weightsMb}`);
  }
  assertPositive('tensorParallelSize', config.tensorParallelSize);
  assertPositive('maxModelLen', config.maxModelLen);
  assertPositive('maxNumBatchedTokens', config.maxNumBatchedTokens);
  assertPositive('maxNumSeqs', config.maxNumSeqs);
  if (!Number.isFinite(config.gpuMemoryUtilization)) {
    throw new RangeError(`gpuMemoryUtilization must be a number, got ${config.gpuMemoryUtilization}`);
  }
  if (!Number.isFinite(gpuTotalMb) || gpuTotalMb < 0) {
    throw new RangeError(`gpuTotalMb must be a number ≥ 0, got ${gpuTotalMb}`);
  }
}

/** KV heads one tensor-parallel rank holds: vLLM replicates them when there are fewer heads than ranks. */
export function kvHeadsPerRank(model: ModelProfile, config: ServingConfig): number {
  return Math.max(1, Math.floor(model.kvHeads / config.tensorParallelSize));
}

/** Bytes of one KV cache element: 1 for the fp8 variants, else the model dtype. */
export function kvDtypeBytes(model: ModelProfile, config: ServingConfig): number {
  return config.kvCacheDtype === 'auto' ? model.dtypeBytes : 1;
}

/** KV cache bytes one token takes on one GPU: 2 (K and V) × layers × kv heads per rank × head dim × dtype bytes. */
export function kvBytesPerToken(model: ModelProfile, config: ServingConfig): number {
  return 2 * model.layers * kvHeadsPerRank(model, config) * model.headDim * kvDtypeBytes(model, config);
}

/** KV cache bytes one request of `len` tokens needs (whole blocks, as vLLM allocates them). */
export function kvBytesForModelLen(model: ModelProfile, config: ServingConfig, len: number): number {
  return Math.ceil(len / KV_BLOCK_SIZE) * KV_BLOCK_SIZE * kvBytesPerToken(model, config);
}

/** Weights one rank holds, MiB (the checkpoint split evenly; replicated norms are negligible). */
export function weightsPerGpuMb(model: ModelProfile, config: ServingConfig): number {
  return model.weightsMb / config.tensorParallelSize;
}

/**
 * Bytes of live activations per token at the peak of one decoder layer: four hidden-size buffers
 * (residual, normed input, layer output, all-reduce/o_proj output) plus the larger of the MLP (gate-up
 * projection output 2 × intermediate and the activated intermediate) and the attention block (q, k, v and
 * the attention output), both sharded by tensor parallelism.
 */
export function forwardBytesPerToken(
  model: ModelProfile,
  config: ServingConfig,
  rules: Pick<PlanRules, 'forwardHiddenBuffers'> = CONSERVATIVE,
): number {
  const tp = config.tensorParallelSize;
  const mlp = (3 * model.intermediateSize) / tp;
  const attention = ((2 * model.attentionHeads + 2 * model.kvHeads) * model.headDim) / tp;
  return (rules.forwardHiddenBuffers * model.hiddenSize + Math.max(mlp, attention)) * model.dtypeBytes;
}

/**
 * Peak activation memory of vLLM's profiling run, MiB. profile_run runs the model over
 * max_num_batched_tokens dummy tokens, then the sampler over min(max_num_seqs, max_num_batched_tokens)
 * requests while the hidden states of all tokens are still alive. The peak is the larger of the two:
 *   forward = tokens × forwardBytesPerToken
 *   sampler = requests × vocab × (dtype bytes + extra) + tokens × hidden × dtype bytes
 * with extra = 36 bytes (nine fp32 buffers) up to vLLM 0.16 and without a release, 13 from 0.17. Pooling
 * models never sample; V0 samples nothing when it profiles in chunks (max_num_batched_tokens < max_model_len).
 */
export function activationPeakMb(
  model: ModelProfile,
  config: ServingConfig,
  rules: Omit<PlanRules, 'cudaGraphsInBudget' | 'graphsPerSize'> = CONSERVATIVE,
): number {
  const tokens = config.maxNumBatchedTokens;
  const requests = Math.min(config.maxNumSeqs, tokens);
  const forward = tokens * forwardBytesPerToken(model, config, rules);
  const samples =
    model.kind !== 'pooling' && (rules.samplerWithChunkedPrefill || tokens >= config.maxModelLen);
  const sampler = samples
    ? requests * model.vocabSize * (model.dtypeBytes + rules.samplerExtraBytes) +
      tokens * model.hiddenSize * model.dtypeBytes
    : 0;
  return Math.max(forward, sampler) / MiB;
}

/** Non-torch memory of one rank in the conservative plan, MiB: {@link NON_TORCH_BASE_MB}, plus {@link NON_TORCH_TP_EXTRA_MB} with TP > 1. */
export function nonTorchMb(config: ServingConfig): number {
  return NON_TORCH_BASE_MB + (config.tensorParallelSize > 1 ? NON_TORCH_TP_EXTRA_MB : 0);
}

/** The CUDA context of one process on a GPU of this size, MiB. */
export function cudaContextMb(gpuTotalMb: number): number {
  return gpuTotalMb >= LARGE_GPU_MB ? CUDA_CONTEXT_MB.large : CUDA_CONTEXT_MB.small;
}

/**
 * Non-torch memory a release charges to the KV cache, MiB: the profiling run's growth, or with tensor
 * parallelism the communication buffers; plus the CUDA context and the other processes for the
 * accountings that count everything torch does not own.
 */
export function releaseNonTorchMb(
  accounting: Accounting,
  engine: 'v0' | 'v1',
  config: ServingConfig,
  gpuTotalMb: number,
  othersMb: number,
): number {
  const growth =
    config.tensorParallelSize > 1
      ? gpuTotalMb >= LARGE_GPU_MB
        ? NON_TORCH_TP_MB.nvlinkClass
        : NON_TORCH_TP_MB.pcie
      : NON_TORCH_GROWTH_MB[engine];
  return accounting === 'all_non_torch' ? growth + cudaContextMb(gpuTotalMb) + Math.max(0, othersMb) : growth;
}

/**
 * The batch sizes vLLM captures CUDA graphs for, by default: 1, 2, 4, then every 8 below 256, then every
 * 16, up to min(2 × max_num_seqs, 512, max_num_batched_tokens). Empty with enforce_eager.
 */
export function cudaGraphCaptureSizes(config: ServingConfig): number[] {
  if (config.enforceEager) return [];
  const max = Math.min(2 * config.maxNumSeqs, CUDA_GRAPH_MAX_CAPTURE, config.maxNumBatchedTokens);
  const sizes = [1, 2, 4].filter((s) => s <= max);
  for (let s = 8; s < 256 && s <= max; s += 8) sizes.push(s);
  for (let s = 256; s <= max; s += 16) sizes.push(s);
  return sizes;
}

/**
 * CUDA-graph memory, MiB: 0 with enforce_eager; otherwise a per-graph cost for each captured size
 * (0.25 MiB per layer: kernel parameters and the piecewise graphs' private buffers) plus the activations
 * of the largest captured batch, which live in the shared graph pool. Grows with max_num_seqs, which sets
 * the largest captured size.
 */
export function cudaGraphMb(
  model: ModelProfile,
  config: ServingConfig,
  rules: Pick<PlanRules, 'graphsPerSize' | 'forwardHiddenBuffers'> = CONSERVATIVE,
): number {
  const sizes = cudaGraphCaptureSizes(config);
  const largest = sizes[sizes.length - 1];
  if (largest === undefined) return 0;
  const perGraph = rules.graphsPerSize * sizes.length * model.layers * CUDA_GRAPH_MB_PER_LAYER_PER_SIZE;
  return perGraph + (largest * forwardBytesPerToken(model, config, rules)) / MiB;
}

/** The multimodal encoder's profiling run is not modelled: its share can only be measured. */
export const MULTIMODAL_UNPREDICTABLE =
  "a multimodal model's encoder profiling run (vision/audio) is not modelled: vLLM's start-up report must measure it";

/**
 * How vLLM would size memory for `model` served with `config` on a GPU of `gpuTotalMb` MiB (per GPU; with
 * tensor parallelism every rank gets the same plan), in the accounting of `opts.release` (conservative
 * without one). Values are MiB, not rounded.
 */
export function planMemory(
  model: ModelProfile,
  config: ServingConfig,
  gpuTotalMb: number,
  opts: PlanOptions = {},
): MemoryPlan {
  check(model, config, gpuTotalMb);
  const release = opts.release ?? null;
  const releaseOf = release ? releaseRules(release) : null;
  const rules: PlanRules = releaseOf ?? CONSERVATIVE;
  const requestedMb = gpuTotalMb * config.gpuMemoryUtilization;
  const weightsMb = weightsPerGpuMb(model, config);
  const activation = activationPeakMb(model, config, rules);
  const nonTorch =
    release && releaseOf
      ? releaseNonTorchMb(releaseOf.accounting, release.engine, config, gpuTotalMb, opts.othersMb ?? 0)
      : nonTorchMb(config);
  const graphs = cudaGraphMb(model, config, rules);
  const kvCacheMb = requestedMb - weightsMb - activation - nonTorch - (rules.cudaGraphsInBudget ? graphs : 0);
  // What the process holds beyond its budget: the context where the accounting leaves it out, and the graphs
  // where they come after the KV cache.
  const contextOutside =
    releaseOf && releaseOf.accounting !== 'all_non_torch' ? cudaContextMb(gpuTotalMb) : 0;
  const outsideBudgetMb = contextOutside + (rules.cudaGraphsInBudget ? 0 : graphs);
  const bytesPerToken = kvBytesPerToken(model, config);
  const maxKvTokens = kvCacheMb > 0 ? Math.floor((kvCacheMb * MiB) / bytesPerToken) : 0;
  // vLLM's binary search over [1, max_model_len]: the longest length whose whole blocks fit.
  const blocks = Math.floor(maxKvTokens / KV_BLOCK_SIZE);
  const estimatedMaxModelLen = Math.min(config.maxModelLen, blocks * KV_BLOCK_SIZE);
  return {
    release: release?.version ?? null,
    accounting: releaseOf?.accounting ?? 'conservative',
    totalMb: gpuTotalMb,
    requestedMb,
    weightsMb,
    activationPeakMb: activation,
    nonTorchMb: nonTorch,
    cudaGraphMb: graphs,
    kvCacheMb,
    kvBytesPerToken: bytesPerToken,
    maxKvTokens,
    estimatedMaxModelLen,
    cudaGraphsInBudget: rules.cudaGraphsInBudget,
    outsideBudgetMb,
    unpredictable: model.kind === 'multimodal' ? MULTIMODAL_UNPREDICTABLE : null,
  };
}

/** vLLM starts with this plan: some KV cache, and one request of max_model_len fits in it (whole blocks). */
export function kvFitsMaxModelLen(plan: MemoryPlan, config: ServingConfig): boolean {
  return plan.kvCacheMb > 0 && plan.estimatedMaxModelLen >= config.maxModelLen;
}
