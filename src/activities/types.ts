// The contract between the workflows (which decide) and the GPU host (which acts). Workflows import
// this file by type only; the implementations live beside it and run on the host's own task queue.
import type { LeaseRelease, LeaseRequest } from '../domain/host-ledger.js';
import type { HealingPolicy } from '../domain/policy.js';
import type { SymptomDetails } from '../domain/symptom.js';

/** One GPU as nvidia-smi reports it; a value the driver does not report is null, never 0. */
export interface GpuMemory {
  index: number;
  uuid: string | null;
  name: string | null;
  totalMb: number | null;
  usedMb: number | null;
  freeMb: number | null;
  utilizationPct: number | null;
}

export interface GpuProcess {
  pid: number;
  processName: string | null;
  usedMb: number | null;
  gpuUuid: string | null;
}

export interface VramSnapshot {
  /** ISO time of the measurement (host clock). */
  measuredAt: string;
  gpus: GpuMemory[];
  processes: GpuProcess[];
}

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

export interface PredictInput {
  host: string;
  kind: string;
  vram: VramSnapshot | null;
  symptom: SymptomDetails | null;
}

export interface CanaryInput {
  host: string;
  kind: string;
  leaseId: string;
  candidate: CandidateConfig;
  /** Longest the service may take from restart to healthy: the budget left, ms. */
  healthDeadlineMs: number;
  /** How long to watch the service after it is healthy, ms. */
  soakMs: number;
}

export interface CanaryResult {
  outcome: 'passed' | 'failed';
  reason: string;
  /** Restart start → healthy, ms; null when the service never became healthy. */
  downtimeMs: number | null;
  /** Peak VRAM measured on the candidate, MiB, when measured. */
  measuredVramMb: number | null;
  /** What vLLM printed about its memory when the candidate started (absent when the log showed none). */
  measured?: StartMeasurement;
}

export interface RestoreInput {
  host: string;
  kind: string;
  leaseId: string;
  reason: string;
  /**
   * Keep a candidate the canary promoted on disk instead of restoring the backup (the lease recovery of an
   * abandoned canary: the canary passed, only its workflow is gone).
   */
  keepPromotion?: boolean;
}

export interface RestoreResult {
  /** Restart start → healthy, ms. */
  downtimeMs: number;
  /** Set when `keepPromotion` found the candidate promoted: nothing was touched. */
  keptPromotion?: boolean;
}

export interface BudgetReport {
  host: string;
  at: string;
  windowOpensAt: string | null;
  budgetTotalMs: number;
  budgetSpentMs: number;
  budgetLeftMs: number;
  overrunMs: number;
  cooldownUntil: string | null;
  /** What happened: the release that changed the figures. */
  event: {
    kind: string;
    outcome: LeaseRelease['outcome'];
    downtimeMs: number;
    restoreFailure?: string;
    canary?: LeaseRelease['canary'];
  };
}

export interface CoordinatorLeaseRequest extends LeaseRequest {
  host: string;
}

export { RESTORE_FAILED, VRAM_UNAVAILABLE } from '../domain/failure-types.js';
import type { RecoverLeaseInput, RecoverLeaseResult } from './recover-lease.js';

export interface HostActivities {
  /** The policy this host's worker was configured with (local activity). */
  loadHealingPolicy(): Promise<HealingPolicy>;
  measureVram(): Promise<VramSnapshot>;
  predictCandidates(input: PredictInput): Promise<Recommendation>;
  runCanary(input: CanaryInput): Promise<CanaryResult>;
  restoreService(input: RestoreInput): Promise<RestoreResult>;
  reportBudget(report: BudgetReport): Promise<void>;
  /** Signal-with-start the host coordinator: workflows cannot start other workflows' runs themselves. */
  requestCanaryLease(request: CoordinatorLeaseRequest): Promise<void>;
  /** The coordinator's restore of a canary whose holder vanished (recover-lease.ts). */
  recoverAbandonedLease(input: RecoverLeaseInput): Promise<RecoverLeaseResult>;
}
