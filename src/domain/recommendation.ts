// The predictive mode's answer: candidate configs ranked by the memory model, and how the model compares
// with what vLLM measured for the running config.
/** One config the service could run instead of its current one, with what the model predicts. */
export interface CandidateConfig {
  /** Stable id, e.g. "gpu_memory_utilization=0.85". */
  id: string;
  /** The keys that change, as they are written to the service's YAML config. */
  changes: Record<string, string | number | boolean>;
  /** Predicted peak VRAM of the service on this config, MiB. */
  predictedVramMb: number;
  /** KV cache vLLM is predicted to keep with this config, MiB (after calibration to what it measured). */
  predictedKvMb?: number;
  /** Tokens that KV cache holds. */
  predictedKvTokens?: number;
  /** The memory model cannot size this model's KV cache (multimodal) and nothing measured it yet. */
  mustBeMeasured?: true;
  /** What the GPU keeps free with this config, MiB (negative: does not fit). */
  headroomMb: number;
  fits: boolean;
  /** Restart + health time expected, ms: what the budget is checked against. */
  predictedDowntimeMs: number;
  /** What the service gives up (context length, throughput, ...). */
  givesUp: string;
  /** Why this candidate, in one sentence. */
  why: string;
}

export interface Recommendation {
  /** ISO time it was computed. */
  at: string;
  /** Short description of what it was based on (symptom family, measured free memory). */
  basis: string;
  /** Ranked best first; deterministic for the same inputs. */
  candidates: CandidateConfig[];
  /** The running config: what vLLM printed at its start and what the model predicts for it. */
  calibration?: Calibration;
}

/** Measured (vLLM's start-up report in its log) against predicted (the memory model), for the running config. */
export interface Calibration {
  /** vLLM's version, when its log names it. */
  vllmVersion: string | null;
  measuredKvMb: number | null;
  measuredKvTokens: number | null;
  measuredWeightsMb: number | null;
  predictedKvMb: number;
  predictedWeightsMb: number;
  /** (predicted − measured) / measured of the KV cache, before calibration; null without a measurement. */
  kvErrorRatio: number | null;
}

/** What vLLM printed about its memory at a start (a canary's candidate), MiB and tokens. */
export interface StartMeasurement {
  vllmVersion: string | null;
  kvCacheMb: number | null;
  kvTokens: number | null;
  weightsMb: number | null;
}
