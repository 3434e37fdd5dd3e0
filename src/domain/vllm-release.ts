// What a vLLM release does when it sizes its memory at start-up: the accounting, the profiling run's
// sampler, where the CUDA graphs go, and the scheduler's defaults. Every rule is read from the released
// sources and checked against what those releases printed (test/fixtures/vllm-startup-reports/README.md,
// "How each release accounts memory", has the links and line numbers). Pure.

export interface VllmRelease {
  /** As the service printed or answered it, e.g. "0.6.3.post1", "0.11.1rc6.dev35+g29de3cdee". */
  version: string;
  major: number;
  minor: number;
  patch: number;
  /** V0 (LLMEngine) or V1 (EngineCore): V1 is the default from 0.8.0, the only engine from 0.11. */
  engine: 'v0' | 'v1';
}

const VERSION = /^v?(\d{1,3})\.(\d{1,4})(?:\.(\d{1,4}))?(?:[.\-+]?[0-9A-Za-z.+-]*)?$/;

/** The release a version string names, or null when it is not a vLLM version ("0.10.1.1", "v0.6.3.post1"). */
export function parseVllmRelease(version: string, engine?: 'v0' | 'v1'): VllmRelease | null {
  const text = version.trim();
  if (text.length > 100) return null;
  const m = VERSION.exec(text);
  if (!m) return null;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  const patch = Number(m[3] ?? 0);
  const r = { version: text.replace(/^v/, ''), major, minor, patch };
  return { ...r, engine: engine ?? (atLeast(r, 0, 8, 0) ? 'v1' : 'v0') };
}

/** Whether the release is `major.minor.patch` or later (pre-releases of it count as it). */
export function atLeast(
  r: Pick<VllmRelease, 'major' | 'minor' | 'patch'>,
  major: number,
  minor: number,
  patch = 0,
): boolean {
  if (r.major !== major) return r.major > major;
  if (r.minor !== minor) return r.minor > minor;
  return r.patch >= patch;
}

/**
 * How the KV cache is what is left of `total × utilization`:
 * - `init_baseline` (V0 ≤ 0.6.3): minus the weights, the activation peak and the non-torch growth since the
 *   worker started — the CUDA context and other processes are not charged.
 * - `all_non_torch` (V0 0.6.4.x, V1 ≤ 0.9.0): minus the torch peak (weights included) and everything on the
 *   GPU torch does not own: the CUDA context and other processes too (a low utilization on a shared GPU
 *   leaves no cache at all).
 * - `three_terms` (V0 0.6.5 → 0.10, V1 0.9.1 → 0.26): minus the weights, the torch peak increase and the
 *   non-torch increase; the context and other processes are outside the budget.
 * - `consumed` (V1 0.27 →): minus what the profiling consumed since the start plus its transient peak — the
 *   same terms measured another way.
 */
export type Accounting = 'init_baseline' | 'all_non_torch' | 'three_terms' | 'consumed';

export interface ReleaseRules {
  accounting: Accounting;
  /**
   * The profiling run's sampler, bytes per request × vocabulary entry on top of the logits in the model dtype:
   * 36 (nine fp32 buffers: top-k/top-p sorts over the whole vocabulary) up to 0.16; 13 from 0.17, whose
   * dummy sampler run no longer sorts (Qwen3-14B on an H100: 5.64 GiB torch peak on 0.15/0.16, 2.23 on 0.17/0.18).
   */
  samplerExtraBytes: number;
  /** V0 samples nothing in a chunked-prefill profiling run (its dummy prefill chunks do not finish). */
  samplerWithChunkedPrefill: boolean;
  /** Hidden-size buffers live at a decoder layer's peak: 3 in V0, 4 in V1 (torch.compile's residual copy). */
  forwardHiddenBuffers: number;
  /** The CUDA-graph estimate is taken off the KV budget (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1 from 0.20). */
  cudaGraphsInBudget: boolean;
  /** Graphs captured per batch size: 2 (FULL and PIECEWISE) from 0.11's default cudagraph mode, else 1. */
  graphsPerSize: number;
  /** vLLM's default gpu_memory_utilization: 0.92 from 0.20, 0.9 before. */
  defaultUtilization: number;
  /** The start-up refusal when less than `total × utilization` is free (V1 0.9.1 →). */
  startupFreeMemoryCheck: boolean;
}

export function releaseRules(r: VllmRelease): ReleaseRules {
  const v1 = r.engine === 'v1';
  let accounting: Accounting;
  if (!v1) {
    accounting = !atLeast(r, 0, 6, 4)
      ? 'init_baseline'
      : !atLeast(r, 0, 6, 5)
        ? 'all_non_torch'
        : 'three_terms';
  } else {
    accounting = !atLeast(r, 0, 9, 1) ? 'all_non_torch' : !atLeast(r, 0, 27) ? 'three_terms' : 'consumed';
  }
  return {
    accounting,
    samplerExtraBytes: v1 && atLeast(r, 0, 17) ? 13 : 36,
    samplerWithChunkedPrefill: v1,
    forwardHiddenBuffers: v1 ? 4 : 3,
    cudaGraphsInBudget: v1 && atLeast(r, 0, 20),
    graphsPerSize: v1 && atLeast(r, 0, 11) ? 2 : 1,
    defaultUtilization: atLeast(r, 0, 20) ? 0.92 : 0.9,
    startupFreeMemoryCheck: v1 && atLeast(r, 0, 9, 1),
  };
}

export interface GpuHint {
  /** Total memory of the GPU, MiB; unknown → the small-GPU defaults. */
  gpuTotalMb?: number | null;
  /** GPU product name (nvidia-smi's `name`), to tell A100s, H100s and GB10s apart. */
  gpuName?: string | null;
}

const GiB_MB = 1024;

/**
 * max-num-batched-tokens and max-num-seqs when the config leaves them out (`vllm serve`), and whether
 * chunked prefill is on. V0: chunked prefill from max-model-len > 32768, then 512 tokens (≤ 0.6.4) or 2048,
 * else max(max-model-len, 2048); 256 sequences. V1 by release and GPU (README table "V1 scheduler
 * defaults"). An unknown release takes today's V1 rule. Without chunked prefill the token budget is at
 * least max-model-len; max-num-seqs is never more than max-num-batched-tokens.
 */
export function batchDefaultsFor(
  release: VllmRelease | null,
  gpu: GpuHint,
  maxModelLen: number,
  chunkedPrefill?: boolean,
): { maxNumBatchedTokens: number; maxNumSeqs: number; chunkedPrefill: boolean } {
  const totalMb = gpu.gpuTotalMb ?? 0;
  const name = gpu.gpuName ?? '';
  let tokens: number;
  let seqs: number;
  let chunked: boolean;
  if (release?.engine === 'v0') {
    chunked = chunkedPrefill ?? maxModelLen > 32768;
    seqs = 256;
    tokens = chunked ? (atLeast(release, 0, 6, 5) ? 2048 : 512) : Math.max(maxModelLen, 2048);
  } else {
    chunked = chunkedPrefill ?? true;
    let large: boolean;
    if (release && !atLeast(release, 0, 8, 4)) {
      large = /h100|h200/i.test(name);
      seqs = 1024;
    } else {
      large =
        totalMb >= 70 * GiB_MB &&
        (release !== null && !atLeast(release, 0, 9) ? true : !/a100/i.test(name)) &&
        !(/gb10\b/i.test(name) && (release === null || atLeast(release, 0, 33)));
      seqs = large ? 1024 : 256;
    }
    tokens = large ? 8192 : 2048;
    if (release && atLeast(release, 0, 33) && totalMb >= 160 * GiB_MB) tokens = 16384;
    if (!chunked) tokens = Math.max(maxModelLen, tokens);
  }
  return { maxNumBatchedTokens: tokens, maxNumSeqs: Math.min(seqs, tokens), chunkedPrefill: chunked };
}
