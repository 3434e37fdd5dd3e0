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

/**
 * Which of the host's services an activity acts on: the service part of the workflow id (null or absent:
 * the host's legacy service, whose ids name none; docs/deployment.md).
 */
export interface ServiceRef {
  service?: string | null;
}

export interface PredictInput extends ServiceRef {
  host: string;
  kind: string;
  vram: VramSnapshot | null;
  symptom: SymptomDetails | null;
}

export interface CanaryInput extends ServiceRef {
  host: string;
  kind: string;
  leaseId: string;
  candidate: CandidateConfig;
  /** Longest the service may take from restart to healthy: the budget left, ms. */
  healthDeadlineMs: number;
  /** How long to watch the service after it is healthy, ms. */
  soakMs: number;
}

export interface RestoreInput extends ServiceRef {
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

/** What a healing workflow learns of its service from its worker (serviceIdentity). */
export interface ServiceIdentity {
  /** The name of the host's legacy service (ids without a service), or null when it has none. */
  legacyService: string | null;
  /** Whether the namespace has the KlrService search attribute. */
  serviceAttribute: boolean;
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
  /** 0.5: the legacy service's name and whether KlrService is registered (local activity). */
  serviceIdentity(): Promise<ServiceIdentity>;
  /** The host's GPUs; with a service, only its GPUs and who else uses them (0.4 runs pass nothing). */
  measureVram(ref?: ServiceRef): Promise<VramSnapshot>;
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
