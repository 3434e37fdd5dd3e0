// The contract between the workflows (which decide) and the GPU host (which acts). Workflows import
// this file by type only; the implementations live beside it and run on the host's own task queue.
import type { LeaseDecision, LeaseRequest } from '../domain/host-ledger.js';
import type { BudgetReport } from '../domain/host-steps.js';
import type { HealingPolicy } from '../domain/policy.js';
import type { SymptomDetails } from '../domain/symptom.js';
import type { CanaryResult } from '../domain/healing-canary.js';
import type { VramSnapshot } from '../domain/vram-snapshot.js';
import type { CandidateConfig, Recommendation } from '../domain/recommendation.js';

export type { GpuMemory, GpuProcess, VramSnapshot } from '../domain/vram-snapshot.js';
export type { CanaryResult } from '../domain/healing-canary.js';
export type {
  Calibration,
  CandidateConfig,
  Recommendation,
  StartMeasurement,
} from '../domain/recommendation.js';

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

/** The host's figures after a release (a domain type: the coordinator's release step makes it). */
export type { BudgetReport };

export interface CoordinatorLeaseRequest extends LeaseRequest {
  host: string;
}

export { RESTORE_FAILED, VRAM_UNAVAILABLE } from '../domain/failure-types.js';
/** An expired lease whose holder may be gone (the coordinator's recoverAbandonedLease, recover-lease.ts). */
export interface RecoverLeaseInput {
  host: string;
  kind: string;
  leaseId: string;
  holderWorkflowId: string;
}

export type RecoverLeaseResult =
  | { action: 'holder_busy'; detail: string }
  | { action: 'kept_promotion' }
  | { action: 'restored'; downtimeMs: number };

export interface HostActivities {
  /** The policy this host's worker was configured with (local activity). */
  loadHealingPolicy(): Promise<HealingPolicy>;
  /** Whether the namespace has the KlrPhase search attribute (a workflow may set it only then). */
  phaseAttributeRegistered(): Promise<boolean>;
  measureVram(): Promise<VramSnapshot>;
  predictCandidates(input: PredictInput): Promise<Recommendation>;
  runCanary(input: CanaryInput): Promise<CanaryResult>;
  restoreService(input: RestoreInput): Promise<RestoreResult>;
  reportBudget(report: BudgetReport): Promise<void>;
  /** Signal-with-start the host coordinator: workflows cannot start other workflows' runs themselves. */
  /** 0.3: the lease as one update-with-start on the host's coordinator; its result is the decision. */
  acquireCanaryLease(request: CoordinatorLeaseRequest): Promise<LeaseDecision>;
  /** 0.2: signal-with-start of the request; the answer comes back by signal (kept for 0.2 histories). */
  requestCanaryLease(request: CoordinatorLeaseRequest): Promise<void>;
  /** The coordinator's restore of a canary whose holder vanished (recover-lease.ts). */
  recoverAbandonedLease(input: RecoverLeaseInput): Promise<RecoverLeaseResult>;
}
