// Messages of HostCoordinatorWorkflow(host): one per GPU host, it owns the nightly downtime budget,
// the cooldown, the single canary lease, the pause switch and the restore-failure latch.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Decision } from '../domain/decision-log.js';
import type { BudgetLedger, HostLedgerState, LeaseRelease, LeaseRequest } from '../domain/host-ledger.js';
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
  restoreFailure: { kind: string; message: string; at: string } | null;
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

/** From a HealingWorkflow (via the requestCanaryLease activity's signal-with-start). */
export const requestLeaseSignal = defineSignal<[LeaseRequest]>('requestLease');
/** From the lease holder when its canary (and any restore) is over. */
export const releaseLeaseSignal = defineSignal<[LeaseRelease]>('releaseLease');
export const hostStateQuery = defineQuery<HostStateView>('hostState');
/** Operator: stop granting canaries on this host. */
export const pauseHostUpdate = defineUpdate<HostStateView, [OperatorAction]>('pause');
/** Operator: grant canaries again. */
export const resumeHostUpdate = defineUpdate<HostStateView, [OperatorAction]>('resume');
/** Operator: the failed restore has been dealt with; canaries may run again. */
export const acknowledgeRestoreFailureUpdate = defineUpdate<HostStateView, [OperatorAction]>(
  'acknowledgeRestoreFailure',
);
