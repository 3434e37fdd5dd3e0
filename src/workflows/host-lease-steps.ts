// What a HostCoordinatorWorkflow does with each lease message: answer a request (once per request id),
// charge a release, expire a lease whose holder vanished, grant an operator's lease. The verdicts are the
// pure host-ledger.ts; this file records them, answers by signal and reports the budget.
import { getExternalWorkflowHandle, log, proxyActivities, uuid4 } from '@temporalio/workflow';
import type { HostActivities } from '../activities/types.js';
import type { AbandonedLeaseRecovery } from '../domain/decision-codes.js';
import { formatDuration } from '../domain/duration-text.js';
import {
  type Lease,
  type LeaseRelease,
  type LeaseRequest,
  type OperatorLeaseRequest,
  RULES_0_1,
  RULES_0_2,
  RULES_0_3,
  answerLeaseRequest,
  applyRelease,
  budgetLeftMs,
  budgetTotalMs,
  decideOperatorLease,
} from '../domain/host-ledger.js';
import { type MaintenanceWindow, formatLocalTime } from '../domain/maintenance-window.js';
import type { HealingPolicy } from '../domain/policy.js';
import { bump, overrunAddedMs } from '../domain/workflow-counters.js';
import { RESTORE_ACTIVITY_OPTIONS } from './activity-options.js';
import { describeFailure } from './failure-text.js';
import { type LeaseDecision, leaseDecisionSignal } from './healing-messages.js';
import type { OperatorLeaseAnswer } from './host-coordinator-messages.js';
import type { HostRun, QueuedRequest } from './host-run.js';

const { reportBudget } = proxyActivities<HostActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

// The restore of an abandoned canary: the same timeouts and retries as the healing workflow's restore.
const { recoverAbandonedLease } = proxyActivities<HostActivities>(RESTORE_ACTIVITY_OPTIONS);

/** The rules a lease step runs under, once the policy is loaded. */
export interface HostRules {
  policy: HealingPolicy;
  window: MaintenanceWindow;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Signal the answer to the requester; false when it cannot be reached. */
async function answer(request: LeaseRequest, decision: LeaseDecision): Promise<boolean> {
  try {
    await getExternalWorkflowHandle(request.holderWorkflowId).signal(leaseDecisionSignal, decision);
    return true;
  } catch (err) {
    log.warn('lease requester unreachable', { requester: request.holderWorkflowId, error: String(err) });
    return false;
  }
}

/**
 * A canary's lease request. By update (0.3): decided and handed to the update's handler as its result; the
 * server answers a retried update id with the same result, and a holder that asks again while it holds the
 * lease gives that unused lease up and is decided afresh. By signal (0.2): decided once per request id,
 * answered by signal, withdrawn when undeliverable.
 */
export async function handleRequest(
  run: HostRun,
  { policy, window }: HostRules,
  { request, via }: QueuedRequest,
): Promise<void> {
  const previous = via === 'signal' ? run.answered.get(request.requestId) : undefined;
  if (previous) {
    // A redelivered request (activity retry): answer the same again, never grant twice.
    await answer(request, previous);
    return;
  }
  const rules = run.leaseUpdates ? RULES_0_3 : run.safeRules ? RULES_0_2 : RULES_0_1;
  const decided = answerLeaseRequest(run.ledger, request, policy, window, Date.now(), uuid4(), rules);
  const { verdict, answer: decision } = decided;
  run.ledger = decided.state;
  if (decided.givenUp !== null) {
    const { kind, leaseId } = decided.givenUp;
    run.decide({ code: 'lease_given_up', params: { kind, leaseId } });
  }
  if (verdict.granted) {
    run.decide({
      code: 'lease_granted',
      params: {
        kind: request.kind,
        predictedDowntimeMs: request.predictedDowntimeMs,
        budgetLeftMs: verdict.lease.budgetLeftMs,
      },
    });
  } else {
    bump(run.counters.leaseRefusals, verdict.code);
    run.decide({
      code: 'lease_refused',
      params: { kind: request.kind, reason: verdict.reason, refusal: verdict.code },
    });
  }
  if (via === 'update') {
    run.updateAnswers.set(request.requestId, decision);
    return;
  }
  run.remember(decision);
  const delivered = await answer(request, decision);
  if (!delivered && verdict.granted && run.ledger.lease?.leaseId === verdict.lease.leaseId) {
    run.ledger = { ...run.ledger, lease: null };
    run.decide({ code: 'lease_withdrawn', params: { holderWorkflowId: request.holderWorkflowId } });
  }
}

/** The holder's release: its downtime charged, the cooldown started, a failed restore latched; reported. */
export async function handleRelease(
  run: HostRun,
  { policy }: HostRules,
  release: LeaseRelease,
): Promise<void> {
  const now = Date.now();
  const lease = run.ledger.lease;
  if (!lease || lease.leaseId !== release.leaseId) {
    run.decide({ code: 'release_ignored', params: { leaseId: release.leaseId } });
    return;
  }
  const before = run.ledger.ledger;
  run.ledger = applyRelease(run.ledger, release, policy, now);
  const { ledger, cooldownUntil } = run.ledger;
  run.counters.overrunMs += overrunAddedMs(before, ledger);
  const left = Math.max(0, budgetTotalMs(policy) - ledger.spentMs);
  run.decide({
    code: 'lease_released',
    params: {
      kind: lease.kind,
      outcome: release.outcome,
      downtimeMs: release.downtimeMs,
      budgetLeftMs: left,
      overrunMs: ledger.overrunMs,
      cooldownMs: cooldownUntil !== null ? cooldownUntil - now : null,
    },
  });
  if (release.outcome === 'restore_failed' || release.outcome === 'rollback_failed') {
    run.decide({
      code: 'canaries_stopped',
      params: {
        what: release.outcome === 'restore_failed' ? 'restore' : 'rollback',
        kind: lease.kind,
        failure: release.restoreFailure ?? 'unknown',
        host: run.host,
      },
    });
  }
  try {
    await reportBudget({
      host: run.host,
      at: iso(now),
      windowOpensAt: ledger.windowOpensAt === null ? null : iso(ledger.windowOpensAt),
      budgetTotalMs: budgetTotalMs(policy),
      budgetSpentMs: ledger.spentMs,
      budgetLeftMs: left,
      overrunMs: ledger.overrunMs,
      cooldownUntil: cooldownUntil === null ? null : iso(cooldownUntil),
      event: {
        kind: lease.kind,
        outcome: release.outcome,
        downtimeMs: release.downtimeMs,
        ...(release.restoreFailure ? { restoreFailure: release.restoreFailure } : {}),
        ...(release.canary ? { canary: release.canary } : {}),
      },
    });
  } catch (err) {
    run.decide({ code: 'budget_report_failed', params: { failure: String(err) } });
  }
}

/**
 * The holder vanished or hung: charge what it was allowed to spend and start the cooldown, since a
 * canary may well have restarted the service. Under the 0.2 rules a canary whose holder no longer runs it
 * is restored first (its workflow may have been terminated mid-canary), and a failed restore latches.
 */
export async function expireLease(run: HostRun, { policy }: HostRules, expired: Lease): Promise<void> {
  let downtimeMs = expired.predictedDowntimeMs;
  let outcome: LeaseRelease['outcome'] = 'restored';
  let restoreFailure: string | undefined;
  let recovered: AbandonedLeaseRecovery = { action: 'none' };
  if (run.safeRules && !expired.holderWorkflowId.startsWith('operator:')) {
    try {
      const recovery = await recoverAbandonedLease({
        host: run.host,
        kind: expired.kind,
        leaseId: expired.leaseId,
        holderWorkflowId: expired.holderWorkflowId,
      });
      if (recovery.action === 'restored') {
        downtimeMs += recovery.downtimeMs;
        recovered = { action: 'restored', downtimeMs: recovery.downtimeMs };
      } else if (recovery.action === 'kept_promotion') {
        recovered = { action: 'kept_promotion' };
      } else {
        recovered = { action: 'left_to_holder', detail: recovery.detail };
      }
    } catch (err) {
      outcome = 'restore_failed';
      restoreFailure = `restoring the abandoned canary of ${expired.kind} failed: ${describeFailure(err)}`;
      recovered = { action: 'restore_failed', failure: restoreFailure, host: run.host };
    }
  }
  const before = run.ledger.ledger;
  run.ledger = applyRelease(
    run.ledger,
    { leaseId: expired.leaseId, downtimeMs, outcome, ...(restoreFailure ? { restoreFailure } : {}) },
    policy,
    Date.now(),
  );
  run.counters.overrunMs += overrunAddedMs(before, run.ledger.ledger);
  run.decide({
    code: 'lease_expired',
    params: { kind: expired.kind, ttlMs: policy.leaseTtlSeconds * 1000, recovery: recovered },
  });
}

/** An operator's lease (healctl rollback): answered once per request id, like a canary's. */
export function grantOperatorLease(
  run: HostRun,
  { policy, window }: HostRules,
  request: OperatorLeaseRequest,
): OperatorLeaseAnswer {
  const decision = run.answered.get(request.requestId) ?? decideOperator(run, { policy, window }, request);
  return {
    requestId: decision.requestId,
    granted: decision.granted,
    ...(decision.leaseId ? { leaseId: decision.leaseId } : {}),
    ...(decision.expiresAt !== undefined ? { expiresAt: decision.expiresAt } : {}),
    reason: decision.reason,
    ...(decision.refusal ? { refusal: decision.refusal } : {}),
    budgetLeftMs: decision.budgetLeftMs,
    budgetTotalMs: decision.budgetTotalMs,
  };
}

function decideOperator(
  run: HostRun,
  { policy, window }: HostRules,
  request: OperatorLeaseRequest,
): LeaseDecision {
  const now = Date.now();
  const verdict = decideOperatorLease(run.ledger, request, policy, window, now, uuid4());
  const figures = { budgetTotalMs: budgetTotalMs(policy), cooldownUntil: run.ledger.cooldownUntil };
  let decision: LeaseDecision;
  if (verdict.granted) {
    run.ledger = { ...run.ledger, lease: verdict.lease };
    decision = {
      requestId: request.requestId,
      granted: true,
      leaseId: verdict.lease.leaseId,
      reason: `granted to ${request.by} for a ${request.purpose}: its downtime is charged to the window opening ${formatLocalTime(verdict.lease.windowOpensAt, window.timeZone)} ${window.timeZone} (${formatDuration(verdict.lease.budgetLeftMs)} left)`,
      expiresAt: verdict.lease.expiresAt,
      budgetLeftMs: verdict.lease.budgetLeftMs,
      ...figures,
    };
    run.decide(
      {
        code: 'operator_lease_granted',
        params: { purpose: request.purpose, reason: request.reason, grant: decision.reason },
      },
      request.by,
    );
  } else {
    bump(run.counters.leaseRefusals, verdict.code);
    decision = {
      requestId: request.requestId,
      granted: false,
      reason: verdict.reason,
      refusal: verdict.code,
      budgetLeftMs: budgetLeftMs(run.ledger, policy, window, now),
      ...figures,
    };
    run.decide(
      {
        code: 'operator_lease_refused',
        params: { purpose: request.purpose, reason: verdict.reason, refusal: verdict.code },
      },
      request.by,
    );
  }
  run.remember(decision);
  return decision;
}
