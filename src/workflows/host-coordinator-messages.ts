// Messages of HostCoordinatorWorkflow(host): one per GPU host, it owns the nightly downtime budget,
// the cooldown, the single canary lease, the pause switch and the restore-failure latch.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Decision } from '../domain/decision-log.js';
import {
  type BudgetLedger,
  type HostLedgerState,
  type LeaseRelease,
  type LeaseRequest,
  type OperatorLeaseRequest,
  type RefusalCode,
  emptyLedger,
} from '../domain/host-ledger.js';
import type { HealingPolicy } from '../domain/policy.js';
import type { HostCounters } from '../domain/workflow-counters.js';
import type { LeaseDecision, OperatorAction } from './healing-messages.js';

export interface HostCoordinatorInput {
  host: string;
  carried?: CarriedHostState;
}

export interface CarriedHostState {
  ledger: HostLedgerState;
  decisions: Decision[];
  /** Recently answered request ids: a redelivered request is answered again, not granted twice. */
  answered: [string, LeaseDecision][];
  /** Lease refusals and overrun for the metrics; absent in runs carried from older versions. */
  counters?: HostCounters;
  runs: number;
}

export interface HostStateView {
  workflowId: string;
  host: string;
  now: string;
  budgetTotalMs: number;
  budgetLeftMs: number;
  budgetSpentMs: number;
  overrunMs: number;
  windowOpensAt: string | null;
  cooldownUntil: string | null;
  cooldownLeftMs: number;
  lease: (HostLedgerState['lease'] & object) | null;
  paused: { by: string; reason: string; at: string } | null;
  restoreFailure: { kind: string; service?: string; message: string; at: string } | null;
  /** The budget ledger as stored (the figures above are as of the last workflow task, not now). */
  ledger: BudgetLedger;
  /** Monotonic totals the worker exports as Prometheus counters (docs/metrics.md). */
  counters: HostCounters;
  /** Run id of the first run of this chain: a new one means the counts started again from zero. */
  firstRunId: string;
  decisions: Decision[];
  policy: HealingPolicy | null;
  runs: number;
}

/** The stored ledger and cooldown of a view (none yet: empty), for figures computed at the reader's time. */
export function hostLedgerOf(
  view: Pick<HostStateView, 'ledger' | 'cooldownUntil'> | null,
): Pick<HostLedgerState, 'ledger' | 'cooldownUntil'> {
  return {
    ledger: view?.ledger ?? emptyLedger(),
    cooldownUntil: view?.cooldownUntil ? Date.parse(view.cooldownUntil) : null,
  };
}

/** From a HealingWorkflow (the acquireCanaryLease activity's update-with-start): the decision is the result. */
export const leaseUpdate = defineUpdate<LeaseDecision, [LeaseRequest]>('lease');
/** 0.2: from a HealingWorkflow (via the requestCanaryLease activity's signal-with-start), answered by signal. */
export const requestLeaseSignal = defineSignal<[LeaseRequest]>('requestLease');
/** From the lease holder when its canary (and any restore) is over. */
export const releaseLeaseSignal = defineSignal<[LeaseRelease]>('releaseLease');
export const hostStateQuery = defineQuery<HostStateView>('hostState');
/** Operator: stop granting canaries on this host. */
export const pauseHostUpdate = defineUpdate<HostStateView, [OperatorAction]>('pause');
/** Operator: grant canaries again. */
export const resumeHostUpdate = defineUpdate<HostStateView, [OperatorAction]>('resume');
/** The coordinator's answer to an operator's lease request (healctl rollback). */
export interface OperatorLeaseAnswer {
  requestId: string;
  granted: boolean;
  /** Set when granted: release it with releaseLease (outcome rolled_back / rollback_failed / not_started). */
  leaseId?: string;
  /** Why, in words (the refusal's reason, or what the grant is charged to). */
  reason: string;
  /** Why it was refused, as a code (absent when granted). */
  refusal?: RefusalCode;
  /** Epoch ms after which the coordinator takes the lease back on its own. */
  expiresAt?: number;
  budgetLeftMs: number;
  budgetTotalMs: number;
}

/**
 * Operator (healctl rollback): hold the host's lease for a change of the live service. Refused while a
 * canary holds the host; the downtime reported at release is charged to the budget. Idempotent per
 * requestId.
 */
export const acquireOperatorLeaseUpdate = defineUpdate<OperatorLeaseAnswer, [OperatorLeaseRequest]>(
  'acquireOperatorLease',
);
/** Operator: the failed restore has been dealt with; canaries may run again. */
export const acknowledgeRestoreFailureUpdate = defineUpdate<AcknowledgeAnswer, [OperatorAction]>(
  'acknowledgeRestoreFailure',
);

/** The host's state after an acknowledgement, and what was acknowledged (null: nothing was latched). */
export type AcknowledgeAnswer = HostStateView & {
  acknowledged: { kind: string; message: string; at: string } | null;
};
