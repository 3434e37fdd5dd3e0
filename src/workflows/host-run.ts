// One run of a HostCoordinatorWorkflow: the host's ledger (budget, cooldown, lease, pause, latch), its
// decisions, answered requests and counters, the messages waiting for the loop, and what people see of it.
// The handlers and the lease steps share this one object; the verdicts are the pure host-ledger.ts.
import { patched, setCurrentDetails, workflowInfo } from '@temporalio/workflow';
import type { DecisionEvent, RefusedMessage } from '../domain/decision-codes.js';
import { type Decision, appendDecision, decisionOf } from '../domain/decision-log.js';
import {
  type HostLedgerState,
  type LeaseRelease,
  type LeaseRequest,
  initialHostLedgerState,
} from '../domain/host-ledger.js';
import type { MaintenanceWindow } from '../domain/maintenance-window.js';
import type { HealingPolicy } from '../domain/policy.js';
import type { HostStep } from '../domain/host-steps.js';
import { type HostCounters, bump, emptyHostCounters } from '../domain/workflow-counters.js';
import type { LeaseDecision } from './healing-messages.js';
import type { CarriedHostState, HostStateView } from './host-coordinator-messages.js';
import { type HostViewContext, hostDetails, hostStateView } from './host-view.js';
import { hostReporter } from './metrics-sink.js';
import { LEASE_UPDATE_PATCH, SAFE_RULES_PATCH } from './patches.js';

/** A lease request waiting for the loop: answered by signal (0.2) or as its update's result. */
export interface QueuedRequest {
  request: LeaseRequest;
  via: 'signal' | 'update';
}

/** Answers kept for redelivered requests (activity retries): enough for any retry, bounded for history. */
const ANSWERED_CAP = 200;

export class HostRun {
  ledger: HostLedgerState;
  readonly decisions: Decision[];
  readonly answered: Map<string, LeaseDecision>;
  readonly counters: HostCounters;
  readonly runs: number;
  /** True once the 0.2 rules apply to this run (see SAFE_RULES_PATCH). */
  safeRules = false;
  /** True once the 0.3 lease rules apply (see LEASE_UPDATE_PATCH). */
  leaseUpdates = false;
  /** Lease requests and releases received, waiting for the main loop (which handles them in order). */
  readonly requests: QueuedRequest[] = [];
  /** The loop's answers to `lease` updates, taken by their handlers. */
  readonly updateAnswers = new Map<string, LeaseDecision>();
  readonly releases: LeaseRelease[] = [];
  /** Messages handled by this run: bounds history even where the server reports no length. */
  messagesThisRun = 0;
  policy: HealingPolicy | undefined;
  window: MaintenanceWindow | undefined;
  private readonly metrics = hostReporter();

  constructor(
    readonly workflowId: string,
    readonly host: string,
    carried: CarriedHostState | null,
  ) {
    this.ledger = carried?.ledger ?? initialHostLedgerState();
    this.decisions = carried?.decisions ?? [];
    this.answered = new Map(carried?.answered ?? []);
    this.counters = carried?.counters ?? emptyHostCounters();
    this.runs = (carried?.runs ?? 0) + 1;
  }

  /** Workflow code only (never a query or validator): patched() may record a marker. */
  refreshRules(): void {
    this.safeRules ||= patched(SAFE_RULES_PATCH);
    this.leaseUpdates ||= patched(LEASE_UPDATE_PATCH);
  }

  decide(event: DecisionEvent, by?: string): void {
    appendDecision(this.decisions, decisionOf(event, Date.now(), by));
    this.publish();
  }

  /** A lease step (src/domain/host-steps.ts): the host after it, its counts, its decisions in order. */
  apply(step: HostStep): void {
    this.ledger = step.state;
    this.counters.overrunMs += step.overrunAddedMs;
    if (step.refusal !== null) bump(this.counters.leaseRefusals, step.refusal);
    for (const d of step.decisions) this.decide(d.event, d.by);
  }

  /** A message that does not have the expected shape: recorded, never acted on. */
  refuseMessage(what: RefusedMessage): (problem: string) => void {
    return (problem) => this.decide({ code: 'message_rejected', params: { message: what, problem } });
  }

  /** Remember the answer to a request, so that a redelivered request gets the same one. */
  remember(decision: LeaseDecision): void {
    this.answered.set(decision.requestId, decision);
    while (this.answered.size > ANSWERED_CAP)
      this.answered.delete(this.answered.keys().next().value as string);
  }

  view(): HostStateView {
    return hostStateView(this.ledger, this.viewContext());
  }

  /** The Web UI's current details. */
  publish(): void {
    setCurrentDetails(hostDetails(this.ledger, this.viewContext()));
    // What the worker's metrics need, when it changed (metrics-sink.ts).
    const v = this.view();
    this.metrics.report({
      workflowId: v.workflowId,
      firstRunId: v.firstRunId,
      counters: v.counters,
      ledger: v.ledger,
      cooldownUntil: v.cooldownUntil,
      restoreFailure: v.restoreFailure,
      policy: v.policy,
    });
  }

  shouldContinueAsNew(): boolean {
    const limit = this.policy?.historyEventsLimit ?? Number.POSITIVE_INFINITY;
    return (
      workflowInfo().continueAsNewSuggested ||
      workflowInfo().historyLength >= limit ||
      this.messagesThisRun * 4 >= limit
    );
  }

  /** What the next run starts from. */
  carried(): CarriedHostState {
    return {
      ledger: this.ledger,
      decisions: this.decisions,
      answered: [...this.answered],
      counters: this.counters,
      runs: this.runs,
    };
  }

  private viewContext(): HostViewContext {
    return {
      workflowId: this.workflowId,
      firstRunId: workflowInfo().firstExecutionRunId,
      host: this.host,
      now: Date.now(),
      policy: this.policy,
      window: this.window,
      decisions: this.decisions,
      counters: this.counters,
      runs: this.runs,
    };
  }
}
