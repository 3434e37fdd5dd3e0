// Which vLLM configs would fit, predicted without touching the service (predictive mode: no downtime).
// Pure and deterministic: the same inputs give the same candidates in the same order.
//
// The knobs tried follow the failure family the observer reported (symptom.family):
//   startup_free_memory  lower gpu-memory-utilization until the budget fits in what is free
//   torch_oom, cublas_alloc, nccl_alloc, engine_dead (run time)
//                        lower gpu-memory-utilization in small steps (0.02, 0.05, 0.10, or just enough), alone
//                        or with a halved max-num-batched-tokens (less activation memory, so less KV is lost)
//   kv_cache_too_small   max-model-len down to vLLM's printed estimate (rounded down to 1024/256), fp8 KV cache,
//                        more gpu-memory-utilization when the GPU has room, enforce-eager
//   no_cache_blocks      lower max-num-batched-tokens / max-num-seqs, enforce-eager, more utilization if room
// With no family, the current config is put through the memory model to find which failure it would have.
//
// Every candidate is then planned with the memory model. It fits when
//   headroom = GPU total − others' usage − predicted VRAM ≥ safety margin (+ the run-time spike for run-time
//   families), and the KV cache exists and holds one request of max-model-len (whole 16-token blocks).
// Ranking: fits first, then least given up (a weighted score, see GIVE_UP_WEIGHTS), then most headroom,
// then id.
//
// Floors: no candidate lowers max-model-len, max-num-seqs, max-num-batched-tokens or gpu-memory-utilization
// below the operator's floor (KLR_CANDIDATE_MIN_*), or below a default derived from the current config
// (candidateFloors). A candidate that would is left out, and planCandidates says which and why: a config
// that "fits" by crippling the service (max-model-len 16) is no remedy.
import type { CandidateConfig } from './recommendation.js';
import type { SymptomDetails } from './symptom.js';
import {
  KV_BLOCK_SIZE,
  MiB,
  SERVING_KEYS,
  planMemory,
  type MemoryPlan,
  type ModelProfile,
  type ServingConfig,
} from './vllm-memory-model.js';
import type { VllmRelease } from './vllm-release.js';

export const FAMILIES = [
  'torch_oom',
  'startup_free_memory',
  'kv_cache_too_small',
  'no_cache_blocks',
  'cublas_alloc',
  'nccl_alloc',
  'engine_dead',
] as const;
export type Family = (typeof FAMILIES)[number];

const RUNTIME_FAMILIES: ReadonlySet<Family> = new Set([
  'torch_oom',
  'cublas_alloc',
  'nccl_alloc',
  'engine_dead',
]);

export interface GpuCapacity {
  /** Memory the GPU can hand out, MiB (nvidia-smi used + free, or the total). */
  totalMb: number;
  /** Free now, MiB, when measured. */
  freeMb: number | null;
  /** Held by everything but this service, MiB. */
  usedByOthersMb: number;
}

/** The knobs a floor guards: what a candidate may lower, and how far. */
export type FloorKnob = 'maxModelLen' | 'maxNumSeqs' | 'maxNumBatchedTokens' | 'gpuMemoryUtilization';
export const FLOOR_KNOBS: readonly FloorKnob[] = [
  'gpuMemoryUtilization',
  'maxModelLen',
  'maxNumBatchedTokens',
  'maxNumSeqs',
];

/** The operator's floors (KLR_CANDIDATE_MIN_*); null or absent: derived from the current config. */
export type CandidateFloorSettings = Partial<Record<FloorKnob, number | null>>;

/** The setting that overrides each derived floor. */
export const FLOOR_SETTINGS: Readonly<Record<FloorKnob, string>> = {
  maxModelLen: 'KLR_CANDIDATE_MIN_MAX_MODEL_LEN',
  maxNumSeqs: 'KLR_CANDIDATE_MIN_MAX_NUM_SEQS',
  maxNumBatchedTokens: 'KLR_CANDIDATE_MIN_MAX_NUM_BATCHED_TOKENS',
  gpuMemoryUtilization: 'KLR_CANDIDATE_MIN_GPU_MEMORY_UTILIZATION',
};

/**
 * The derived floors: a candidate keeps at least a quarter of what the operator configured (FLOOR_KEEP) and
 * never less than a size a shared service still does useful work with (FLOOR_MINIMUMS); a value the current
 * config already has at or below that minimum is not lowered at all.
 *
 * Why these: the generator's own steps go as far as a quarter (quarter max-num-seqs / max-num-batched-tokens
 * for no_cache_blocks; a utilization cut to what the neighbours leave), so the quarter rule keeps every remedy
 * it was built for and stops only the degenerate ones. Half would be too strict for the commonest
 * kv_cache_too_small case: max-model-len left unset (the model's 131 072) on a GPU that holds 35-60k
 * tokens, where vLLM itself says to decrease max_model_len. The minimums: 4096 tokens of context (a system
 * prompt, a conversation and an answer; Llama 2's whole window), 8 concurrent sequences (fewer and a shared
 * server serialises its clients), 1024 tokens per scheduler step (half of vLLM's smallest default, 2048),
 * utilization 0.05 (MIN_UTILIZATION). A symptom's estimatedMaxModelLen of 16 thus never becomes a candidate:
 * it gives "no fitting candidate within the floors" instead, a visible reason an operator can act on.
 * Derived from the current config, the floors move down with each promotion (until the minimums): set
 * KLR_CANDIDATE_MIN_* to pin them.
 */
export const FLOOR_KEEP = 0.25;
export const FLOOR_MINIMUMS: Readonly<Record<FloorKnob, number>> = {
  maxModelLen: 4096,
  maxNumSeqs: 8,
  maxNumBatchedTokens: 1024,
  gpuMemoryUtilization: 0.05,
};

export interface CandidateFloors {
  /** The floor of each knob: a candidate may not lower the knob below it. */
  values: Record<FloorKnob, number>;
  /** Where each floor came from: the setting (operator) or derived from the current config. */
  sources: Record<FloorKnob, 'setting' | 'derived'>;
}

export interface CandidateInput {
  model: ModelProfile;
  current: ServingConfig;
  gpu: GpuCapacity;
  symptom: SymptomDetails | null;
  restartEstimateMs: number;
  /** The operator's floors; absent knobs take the default derived from `current`. */
  floors?: CandidateFloorSettings;
  /**
   * What vLLM itself printed at the start of the running config (its log): the KV cache it kept, MiB. With
   * it, predictions start from the measured baseline and only the difference a candidate makes is modelled.
   */
  measured?: { kvCacheMb: number };
  /**
   * The release the service runs (its log banner or /version): the plan follows its accounting. Absent:
   * the conservative plan (src/domain/vllm-memory-model.ts).
   */
  release?: VllmRelease | null;
}

/** A candidate the floors kept out of the recommendation. */
export interface BelowFloor {
  /** The id it would have had. */
  id: string;
  /** Whether the memory model predicts it would fit (the floor is what stopped it). */
  wouldFit: boolean;
  /** e.g. "max-model-len 16 below the floor 4096 (KLR_CANDIDATE_MIN_MAX_MODEL_LEN)". */
  reason: string;
}

export interface CandidatePlan {
  /** Ranked: fits first, then least given up, most headroom, id. */
  candidates: CandidateConfig[];
  floors: CandidateFloors;
  /** Candidates left out by the floors, in the order they were considered. */
  belowFloor: BelowFloor[];
}

/** Headroom every candidate keeps beyond its budget: 512 MiB or 1 % of the GPU, whichever is more. */
export function safetyMarginMb(totalMb: number): number {
  return Math.max(512, Math.ceil(totalMb * 0.01));
}

const ceil2 = (u: number): number => Math.ceil(u * 100 - 1e-9) / 100;

/** The floors for this config: the operator's where set, else min(current, max(minimum, current × FLOOR_KEEP)). */
export function candidateFloors(
  current: ServingConfig,
  settings: CandidateFloorSettings = {},
): CandidateFloors {
  const values = {} as Record<FloorKnob, number>;
  const sources = {} as Record<FloorKnob, 'setting' | 'derived'>;
  for (const knob of FLOOR_KNOBS) {
    const set = settings[knob];
    if (set !== undefined && set !== null) {
      values[knob] = set;
      sources[knob] = 'setting';
      continue;
    }
    const cur = current[knob];
    const kept = knob === 'gpuMemoryUtilization' ? ceil2(cur * FLOOR_KEEP) : Math.ceil(cur * FLOOR_KEEP);
    values[knob] = Math.min(cur, Math.max(FLOOR_MINIMUMS[knob], kept));
    sources[knob] = 'derived';
  }
  return { values, sources };
}

/** The knobs a config lowers below their floors (a knob at or above its current value never is). */
function belowFloors(current: ServingConfig, config: ServingConfig, floors: CandidateFloors): FloorKnob[] {
  return FLOOR_KNOBS.filter(
    (k) => config[k] < current[k] && config[k] < floors.values[k] - (k === 'gpuMemoryUtilization' ? 1e-9 : 0),
  );
}

/** The spike a run-time failure is assumed to need when the symptom gives no size (cuBLAS, NCCL, engine death). */
export const DEFAULT_RUNTIME_SPIKE_MB = 1024;

/** Lowest gpu-memory-utilization a candidate proposes. */
export const MIN_UTILIZATION = 0.05;
/** Highest gpu-memory-utilization a candidate proposes when raising it (vLLM's own examples stop at 0.95). */
export const MAX_UTILIZATION = 0.95;

/** Utilization steps tried below the current value for run-time failures. */
export const RUNTIME_UTILIZATION_STEPS = [0.02, 0.05, 0.1] as const;

/**
 * Weights of "what is given up", per fraction lost: a shorter context rejects requests outright, so it
 * weighs most; KV capacity and concurrency cost throughput under load; a smaller prefill chunk slows
 * prefill; CUDA graphs off slows decode; fp8 KV costs a little accuracy; taking more of the GPU leaves less
 * for other processes.
 */
export const GIVE_UP_WEIGHTS = {
  contextPerFraction: 4,
  kvPerFraction: 1,
  seqsPerFraction: 1,
  batchedTokensPerFraction: 0.5,
  enforceEager: 0.25,
  fp8KvCache: 0.15,
  utilizationRaisePerPoint: 2,
} as const;

export interface Diagnosis {
  family: Family;
  /** True when the symptom named no known family and the model picked one. */
  inferred: boolean;
  runtime: boolean;
  /** Spike the headroom must absorb (run-time families), MiB. */
  spikeMb: number;
  marginMb: number;
  /** Usage the symptom shows beyond what the model predicts for the current config, MiB (run time). */
  runtimeExtraMb: number;
  /** Correction of the modelled KV cache to match vLLM's printed estimate, MiB (kv_cache_too_small). */
  kvCalibrationMb: number;
  /**
   * What the release keeps outside gpu-memory-utilization (CUDA graphs, context, where it does not budget
   * them), MiB, for the current config: a fitting utilization must leave room for it.
   */
  outsideBudgetMb: number;
  baseline: Evaluation;
}

interface Evaluation {
  config: ServingConfig;
  plan: MemoryPlan;
  predictedVramMb: number;
  headroomMb: number;
  /** KV cache after calibration, MiB. */
  kvMb: number;
  /** Longest request the KV cache holds (whole blocks), capped at max-model-len. */
  fitLen: number;
  valid: string | null;
  fits: boolean;
  /** Why it does not fit, when it does not. */
  shortfall: string | null;
  /** The model cannot predict its KV cache and nothing measured it: only a canary can tell. */
  mustBeMeasured: boolean;
}

type Knobs = Partial<Omit<ServingConfig, 'tensorParallelSize'>>;

const gib = (mb: number): string => (mb / 1024).toFixed(1);
const round2 = (u: number): number => Math.round(u * 100) / 100;
const floor2 = (u: number): number => Math.floor(u * 100 + 1e-9) / 100;

function isFamily(f: string | undefined): f is Family {
  return f !== undefined && (FAMILIES as readonly string[]).includes(f);
}

function validity(c: ServingConfig): string | null {
  if (!(c.gpuMemoryUtilization > 0 && c.gpuMemoryUtilization <= 1))
    return 'gpu-memory-utilization outside (0, 1]';
  if (c.maxNumBatchedTokens < c.maxNumSeqs) return 'max-num-batched-tokens below max-num-seqs';
  if (c.maxModelLen < KV_BLOCK_SIZE) return `max-model-len below ${KV_BLOCK_SIZE}`;
  return null;
}

function evaluate(
  input: CandidateInput,
  config: ServingConfig,
  d: Pick<Diagnosis, 'runtime' | 'spikeMb' | 'marginMb' | 'runtimeExtraMb' | 'kvCalibrationMb'>,
): Evaluation {
  const plan = planMemory(input.model, config, input.gpu.totalMb, {
    release: input.release ?? null,
    othersMb: input.gpu.usedByOthersMb,
  });
  const predictedVramMb = plan.requestedMb + plan.outsideBudgetMb + d.runtimeExtraMb;
  const headroomMb = input.gpu.totalMb - input.gpu.usedByOthersMb - predictedVramMb;
  const kvMb = plan.kvCacheMb + d.kvCalibrationMb;
  const tokens = kvMb > 0 ? Math.floor((kvMb * MiB) / plan.kvBytesPerToken) : 0;
  const fitLen = Math.min(config.maxModelLen, Math.floor(tokens / KV_BLOCK_SIZE) * KV_BLOCK_SIZE);
  const need = d.marginMb + (d.runtime ? d.spikeMb : 0);
  const valid = validity(config);
  // A model whose KV cache the memory model cannot size is trusted only as a change from a measurement.
  const mustBeMeasured = plan.unpredictable !== null && input.measured === undefined;
  let shortfall: string | null = null;
  if (valid !== null) shortfall = valid;
  else if (mustBeMeasured) shortfall = `it must be measured: ${plan.unpredictable}`;
  else if (headroomMb < need) {
    shortfall = `only ${gib(headroomMb)} GiB would stay free, ${gib(need)} GiB needed${d.runtime ? ` (a ${gib(d.spikeMb)} GiB spike + margin)` : ' (safety margin)'}`;
  } else if (kvMb <= 0) shortfall = 'no memory would be left for the KV cache';
  else if (fitLen < config.maxModelLen) {
    shortfall = `the KV cache would hold ${fitLen} tokens, less than max-model-len ${config.maxModelLen}`;
  }
  return {
    config,
    plan,
    predictedVramMb,
    headroomMb,
    kvMb,
    fitLen,
    valid,
    fits: shortfall === null,
    shortfall,
    mustBeMeasured,
  };
}

/** Why the current config fails, as far as the model can tell (used when the symptom names no family). */
function inferFamily(e: Evaluation, input: CandidateInput, marginMb: number): Family {
  if (e.headroomMb < marginMb && input.gpu.usedByOthersMb > 0) return 'startup_free_memory';
  if (e.kvMb <= 0) return 'no_cache_blocks';
  if (e.fitLen < e.config.maxModelLen) return 'kv_cache_too_small';
  if (e.headroomMb < marginMb) return 'startup_free_memory';
  return 'torch_oom';
}

/** How the symptom reads against the memory model: family, spike, margin and calibrations. */
export function diagnose(input: CandidateInput): Diagnosis {
  const s = input.symptom;
  const marginMb = safetyMarginMb(input.gpu.totalMb);
  const zero = { runtime: false, spikeMb: 0, marginMb, runtimeExtraMb: 0, kvCalibrationMb: 0 };
  const raw = evaluate(input, input.current, zero);
  const named = isFamily(s?.family) ? s.family : null;
  const family = named ?? inferFamily(raw, input, marginMb);
  const runtime = RUNTIME_FAMILIES.has(family);

  const spikeMb = runtime ? (s?.allocMb ?? s?.deficitMb ?? DEFAULT_RUNTIME_SPIKE_MB) : 0;
  // A run-time OOM shows what the GPU really held at the time: total − free. Whatever of it the model does
  // not explain (others + this config's budget) is taken to come with every config.
  let runtimeExtraMb = 0;
  if (runtime && s?.freeMb !== undefined) {
    const total = s.totalMb ?? input.gpu.totalMb;
    runtimeExtraMb = Math.max(
      0,
      total - s.freeMb - input.gpu.usedByOthersMb - raw.plan.requestedMb - raw.plan.outsideBudgetMb,
    );
  }
  // What vLLM measured for the running config is the truth about its KV cache: the KV cache it printed at
  // start-up, else its estimate of the longest length that fits. The difference to the model is carried to
  // every candidate (the model predicts what a change changes, not the level).
  let kvCalibrationMb = 0;
  const est = s?.estimatedMaxModelLen;
  if (input.measured !== undefined && Number.isFinite(input.measured.kvCacheMb)) {
    kvCalibrationMb = input.measured.kvCacheMb - raw.plan.kvCacheMb;
  } else if (family === 'kv_cache_too_small' && est !== undefined && est < input.current.maxModelLen) {
    kvCalibrationMb = (est * raw.plan.kvBytesPerToken) / MiB - raw.plan.kvCacheMb;
  }
  const outsideBudgetMb = raw.plan.outsideBudgetMb;
  const d = { runtime, spikeMb, marginMb, runtimeExtraMb, kvCalibrationMb, outsideBudgetMb };
  return { family, inferred: named === null, ...d, baseline: evaluate(input, input.current, d) };
}

/** Round a context length down to a tidy multiple: 1024 when ≥ 1024, else 256, else one block. */
export function tidyLength(len: number): number {
  for (const m of [1024, 256, KV_BLOCK_SIZE]) if (len >= m) return Math.floor(len / m) * m;
  return 0;
}

/** Half the token budget, on a 256 boundary when that large. */
function halfTokens(t: number): number {
  const h = Math.floor(t / 2);
  return h >= 256 ? Math.floor(h / 256) * 256 : h;
}

/** The largest gpu-memory-utilization that leaves the margin (and the spike) free beside the others. */
function fittingUtilization(input: CandidateInput, d: Diagnosis): number {
  const total = input.gpu.totalMb;
  const capacity =
    total -
    input.gpu.usedByOthersMb -
    d.outsideBudgetMb -
    d.runtimeExtraMb -
    d.marginMb -
    (d.runtime ? d.spikeMb : 0);
  return Math.min(MAX_UTILIZATION, floor2(capacity / total));
}

function knobsFor(input: CandidateInput, d: Diagnosis, fitUtil: number): Knobs[] {
  const cur = input.current;
  const u = cur.gpuMemoryUtilization;
  const out: Knobs[] = [];
  const halfT = halfTokens(cur.maxNumBatchedTokens);
  const halfSeqs = Math.max(1, Math.floor(cur.maxNumSeqs / 2));

  switch (d.family) {
    case 'startup_free_memory': {
      // Down to what is free now; if the neighbours have shrunk since, small steps below the current value.
      const top = fitUtil < u ? fitUtil : round2(u - 0.02);
      out.push(
        { gpuMemoryUtilization: top },
        { gpuMemoryUtilization: round2(top - (fitUtil < u ? 0.02 : 0.03)) },
      );
      break;
    }
    case 'kv_cache_too_small': {
      const est = input.symptom?.estimatedMaxModelLen ?? d.baseline.fitLen;
      for (const len of new Set([tidyLength(est), est >= 256 ? Math.floor(est / 256) * 256 : 0])) {
        if (len > 0 && len < cur.maxModelLen) out.push({ maxModelLen: len });
      }
      if (cur.kvCacheDtype === 'auto') out.push({ kvCacheDtype: 'fp8' });
      if (fitUtil >= u + 0.01) out.push({ gpuMemoryUtilization: fitUtil });
      if (!cur.enforceEager) out.push({ enforceEager: true });
      if (halfT >= cur.maxNumSeqs) out.push({ maxNumBatchedTokens: halfT });
      break;
    }
    case 'no_cache_blocks': {
      // Non-KV memory to give back: activations (token budget, sequences), CUDA graphs; or a larger budget.
      const quarterT = halfTokens(halfT);
      const quarterSeqs = Math.max(1, Math.floor(cur.maxNumSeqs / 4));
      if (halfT >= cur.maxNumSeqs && halfT >= 16) out.push({ maxNumBatchedTokens: halfT });
      out.push({ maxNumSeqs: halfSeqs }, { maxNumSeqs: quarterSeqs });
      if (halfT >= 16) out.push({ maxNumBatchedTokens: halfT, maxNumSeqs: Math.min(halfSeqs, halfT) });
      if (quarterT >= 16)
        out.push({ maxNumBatchedTokens: quarterT, maxNumSeqs: Math.min(quarterSeqs, quarterT) });
      if (!cur.enforceEager) out.push({ enforceEager: true });
      if (fitUtil >= u + 0.01) out.push({ gpuMemoryUtilization: fitUtil });
      break;
    }
    default: {
      // Run time: free memory beside vLLM's budget, in small steps first.
      const utils = RUNTIME_UTILIZATION_STEPS.map((s) => round2(u - s));
      if (fitUtil < u) utils.push(fitUtil);
      for (const x of new Set(utils)) out.push({ gpuMemoryUtilization: x });
      if (halfT >= cur.maxNumSeqs && halfT >= 16) {
        out.push({ maxNumBatchedTokens: halfT });
        for (const x of new Set([round2(u - 0.02), ...(fitUtil < u ? [fitUtil] : [])])) {
          out.push({ gpuMemoryUtilization: x, maxNumBatchedTokens: halfT });
        }
      }
    }
  }
  return out.filter((k) => k.gpuMemoryUtilization === undefined || k.gpuMemoryUtilization >= MIN_UTILIZATION);
}

/**
 * The same knobs plus what it takes to give a candidate that keeps enough headroom a usable KV cache: a
 * larger budget (when the GPU has room), CUDA graphs off, or, for a KV cache that is only too short, a
 * max-model-len it holds or an fp8 KV cache.
 */
function rescues(d: Diagnosis, fitUtil: number, k: Knobs, e: Evaluation): Knobs[] {
  if (e.valid !== null || e.headroomMb < d.marginMb + (d.runtime ? d.spikeMb : 0)) return [];
  const out: Knobs[] = [];
  const raise = fitUtil >= e.config.gpuMemoryUtilization + 0.01 ? fitUtil : null;
  if (e.kvMb <= 0) {
    if (!e.config.enforceEager) out.push({ ...k, enforceEager: true });
    if (raise !== null) out.push({ ...k, gpuMemoryUtilization: raise });
  } else if (e.fitLen < e.config.maxModelLen) {
    const len = tidyLength(e.fitLen);
    if (len > 0) out.push({ ...k, maxModelLen: len });
    if (e.config.kvCacheDtype === 'auto') out.push({ ...k, kvCacheDtype: 'fp8' });
    if (raise !== null) out.push({ ...k, gpuMemoryUtilization: raise });
  }
  return out;
}

const ORDER = Object.keys(SERVING_KEYS) as (keyof ServingConfig)[];

function changesOf(
  current: ServingConfig,
  config: ServingConfig,
): [keyof ServingConfig, string | number | boolean][] {
  return ORDER.filter((f) => config[f] !== current[f]).map((f) => [f, config[f]]);
}

function formatValue(field: keyof ServingConfig, v: string | number | boolean): string {
  return field === 'gpuMemoryUtilization' && typeof v === 'number' ? v.toFixed(2) : String(v);
}

function givesUp(base: Evaluation, e: Evaluation): { text: string; cost: number } {
  const w = GIVE_UP_WEIGHTS;
  const b = base.config;
  const c = e.config;
  const parts: string[] = [];
  let cost = 0;
  if (c.maxModelLen < b.maxModelLen) {
    parts.push(`max context ${b.maxModelLen} → ${c.maxModelLen} tokens (longer requests are refused)`);
    cost += w.contextPerFraction * (1 - c.maxModelLen / b.maxModelLen);
  }
  if (base.kvMb > 0 && e.kvMb < base.kvMb) {
    const lost = 1 - Math.max(0, e.kvMb) / base.kvMb;
    parts.push(
      `KV cache ${gib(base.kvMb)} → ${gib(Math.max(0, e.kvMb))} GiB (−${Math.round(lost * 100)} %), fewer concurrent sequences`,
    );
    cost += w.kvPerFraction * lost;
  }
  if (c.maxNumSeqs < b.maxNumSeqs) {
    parts.push(`at most ${c.maxNumSeqs} sequences at once (was ${b.maxNumSeqs})`);
    cost += w.seqsPerFraction * (1 - c.maxNumSeqs / b.maxNumSeqs);
  }
  if (c.maxNumBatchedTokens < b.maxNumBatchedTokens) {
    parts.push(
      `prefill chunk ${b.maxNumBatchedTokens} → ${c.maxNumBatchedTokens} tokens per step (slower prefill under load)`,
    );
    cost += w.batchedTokensPerFraction * (1 - c.maxNumBatchedTokens / b.maxNumBatchedTokens);
  }
  if (c.enforceEager && !b.enforceEager) {
    parts.push('no CUDA graphs (slower decode)');
    cost += w.enforceEager;
  }
  if (c.kvCacheDtype !== 'auto' && b.kvCacheDtype === 'auto') {
    parts.push('fp8 KV cache (small accuracy cost)');
    cost += w.fp8KvCache;
  }
  if (c.gpuMemoryUtilization > b.gpuMemoryUtilization) {
    parts.push(
      `${gib(e.plan.requestedMb - base.plan.requestedMb)} GiB more of the GPU (less left for other processes)`,
    );
    cost += w.utilizationRaisePerPoint * (c.gpuMemoryUtilization - b.gpuMemoryUtilization);
  }
  if (parts.length === 0) {
    const kv =
      base.kvMb > 0 ? `KV cache ${gib(base.kvMb)} → ${gib(e.kvMb)} GiB` : `KV cache ${gib(e.kvMb)} GiB`;
    parts.push(`nothing (${kv})`);
  }
  return { text: parts.join('; '), cost: Math.round(cost * 1e6) / 1e6 };
}

function symptomPhrase(input: CandidateInput, d: Diagnosis): string {
  const s = input.symptom;
  const cur = input.current;
  const base = d.baseline;
  if (d.inferred) {
    const what = {
      startup_free_memory: `would ask for ${gib(base.plan.requestedMb)} GiB with only ${gib(input.gpu.totalMb - input.gpu.usedByOthersMb)} GiB not used by others`,
      no_cache_blocks: 'would leave no memory for KV cache blocks',
      kv_cache_too_small: `would hold only ${base.fitLen} of max-model-len ${cur.maxModelLen} tokens in its KV cache`,
    }[d.family as 'startup_free_memory' | 'no_cache_blocks' | 'kv_cache_too_small'];
    return what !== undefined
      ? `No symptom family given, and the current config ${what}`
      : `No symptom family given; assuming a run-time OOM of ${gib(d.spikeMb)} GiB`;
  }
  switch (d.family) {
    case 'torch_oom':
      return `CUDA ran out of memory at run time (a ${gib(d.spikeMb)} GiB allocation failed${s?.freeMb !== undefined ? ` with ${Math.round(s.freeMb)} MiB free` : ''})`;
    case 'cublas_alloc':
      return `cuBLAS could not allocate its workspace at run time (assumed ${gib(d.spikeMb)} GiB)`;
    case 'nccl_alloc':
      return `NCCL could not allocate its buffers (assumed ${gib(d.spikeMb)} GiB)`;
    case 'engine_dead':
      return `the engine died (taken as a run-time OOM of ${gib(d.spikeMb)} GiB)`;
    case 'startup_free_memory': {
      const free = s?.freeMb ?? input.gpu.totalMb - input.gpu.usedByOthersMb;
      return `vLLM would not start: ${gib(free)} GiB free is less than the ${gib(base.plan.requestedMb)} GiB gpu-memory-utilization ${cur.gpuMemoryUtilization.toFixed(2)} asks for`;
    }
    case 'kv_cache_too_small':
      return `vLLM would not start: max-model-len ${cur.maxModelLen} needs more KV cache than was left${s?.estimatedMaxModelLen !== undefined ? ` (vLLM estimated ${s.estimatedMaxModelLen} tokens fit)` : ''}`;
    case 'no_cache_blocks':
      return 'vLLM would not start: no memory was left for KV cache blocks';
  }
}

function why(input: CandidateInput, d: Diagnosis, e: Evaluation): string {
  const change = changesOf(input.current, e.config)
    .map(([f, v]) => `${SERVING_KEYS[f]} ${formatValue(f, input.current[f])} → ${formatValue(f, v)}`)
    .join(' and ');
  const effect = e.fits
    ? `leaves ${gib(e.headroomMb)} GiB free beside vLLM's budget${d.runtime ? ` for the ${gib(d.spikeMb)} GiB spike` : ''} and ${gib(e.kvMb)} GiB of KV cache for requests up to ${e.config.maxModelLen} tokens`
    : `is not enough: ${e.shortfall ?? 'it does not fit'}`;
  return `${symptomPhrase(input, d)}; ${change} ${effect}.`;
}

/** Ranked candidate configs for the service (fits first, then least given up, most headroom, id). */
export function generateCandidates(input: CandidateInput): CandidateConfig[] {
  return planCandidates(input).candidates;
}

/** "max-model-len 16 below the floor 4096 (KLR_CANDIDATE_MIN_MAX_MODEL_LEN)" for each knob a config lowers too far. */
function floorReason(config: ServingConfig, knobs: FloorKnob[], floors: CandidateFloors): string {
  return knobs
    .map(
      (k) =>
        `${SERVING_KEYS[k]} ${formatValue(k, config[k])} below the floor ${formatValue(k, floors.values[k])} (${FLOOR_SETTINGS[k]})`,
    )
    .join(', ');
}

/**
 * The candidates with the floors that bound them and the candidates the floors left out (for the
 * recommendation's basis). Pure and deterministic.
 */
export function planCandidates(input: CandidateInput): CandidatePlan {
  const floors = candidateFloors(input.current, input.floors);
  const belowFloor: BelowFloor[] = [];
  if (!(input.gpu.totalMb > 0)) return { candidates: [], floors, belowFloor };
  const d = diagnose(input);
  const fitUtil = fittingUtilization(input, d);
  const seen = new Map<
    string,
    { candidate: CandidateConfig; cost: number; fields: Map<keyof ServingConfig, string | number | boolean> }
  >();
  const leftOut = new Set<string>();
  const consider = (k: Knobs, allowRescue: boolean): void => {
    const config: ServingConfig = { ...input.current, ...k };
    const changes = changesOf(input.current, config);
    if (changes.length === 0) return;
    const id = changes.map(([f, v]) => `${SERVING_KEYS[f]}=${formatValue(f, v)}`).join(',');
    if (seen.has(id) || leftOut.has(id)) return;
    const low = belowFloors(input.current, config, floors);
    if (low.length > 0) {
      leftOut.add(id);
      belowFloor.push({
        id,
        wouldFit: evaluate(input, config, d).fits,
        reason: floorReason(config, low, floors),
      });
      return;
    }
    const e = evaluate(input, config, d);
    const g = givesUp(d.baseline, e);
    seen.set(id, {
      cost: g.cost,
      fields: new Map(changes),
      candidate: {
        id,
        changes: Object.fromEntries(changes.map(([f, v]) => [SERVING_KEYS[f], v])),
        predictedVramMb: Math.round(e.predictedVramMb),
        ...(e.mustBeMeasured
          ? { mustBeMeasured: true as const }
          : {
              predictedKvMb: Math.round(e.kvMb),
              predictedKvTokens: e.kvMb > 0 ? Math.floor((e.kvMb * MiB) / e.plan.kvBytesPerToken) : 0,
            }),
        headroomMb: Math.round(e.headroomMb),
        fits: e.fits,
        predictedDowntimeMs: input.restartEstimateMs,
        givesUp: g.text,
        why: why(input, d, e),
      },
    });
    if (allowRescue && !e.fits) for (const r of rescues(d, fitUtil, k, e)) consider(r, false);
  };
  for (const k of knobsFor(input, d, fitUtil)) consider(k, true);

  // A fitting candidate that makes every change of another fitting one, and more, only gives up more.
  const all = [...seen.values()];
  const fitting = all.filter((x) => x.candidate.fits);
  const dominated = (x: (typeof all)[number]): boolean =>
    x.candidate.fits &&
    fitting.some(
      (y) =>
        y !== x && y.fields.size < x.fields.size && [...y.fields].every(([f, v]) => x.fields.get(f) === v),
    );

  const candidates = all
    .filter((x) => !dominated(x))
    .sort((a, b) => compareCandidates({ ...a.candidate, cost: a.cost }, { ...b.candidate, cost: b.cost }))
    .map((x) => x.candidate);
  return { candidates, floors, belowFloor };
}

/** The floors in a few words, for the recommendation's basis: "max-model-len ≥ 4096 (derived), …". */
export function describeFloors(floors: CandidateFloors): string {
  return FLOOR_KNOBS.map(
    (k) =>
      `${SERVING_KEYS[k]} ≥ ${formatValue(k, floors.values[k])} (${floors.sources[k] === 'setting' ? FLOOR_SETTINGS[k] : 'derived'})`,
  ).join(', ');
}

/** The ranking: fits first, then least given up (cost), then most headroom, then id. */
export function compareCandidates(
  a: Pick<CandidateConfig, 'fits' | 'headroomMb' | 'id'> & { cost: number },
  b: Pick<CandidateConfig, 'fits' | 'headroomMb' | 'id'> & { cost: number },
): number {
  return (
    Number(b.fits) - Number(a.fits) ||
    a.cost - b.cost ||
    b.headroomMb - a.headroomMb ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}
