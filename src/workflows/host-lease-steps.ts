// What a HostCoordinatorWorkflow does with each lease message: answer a request (once per request id),
// charge a release, expire a lease whose holder vanished, grant an operator's lease. Each is a pure step
// (src/domain/host-steps.ts) that the run applies; this file runs the steps' commands: answer by signal,
// report the budget, restore an abandoned canary.
import { getExternalWorkflowHandle, log, proxyActivities, uuid4 } from '@temporalio/workflow';
import type { HostActivities } from '../activities/types.js';
import type { AbandonedLeaseRecovery } from '../domain/decision-codes.js';
import {
  type Lease,
  type LeaseRelease,
  type LeaseRequest,
  type OperatorLeaseRequest,
  RULES_0_1,
  RULES_0_2,
  RULES_0_3,
} from '../domain/host-ledger.js';
import {
  expiryNeedsRecovery,
  expiryStep,
  operatorLeaseStep,
  releaseStep,
  requestStep,
  withdrawStep,
} from '../domain/host-steps.js';
import type { MaintenanceWindow } from '../domain/maintenance-window.js';
import type { HealingPolicy } from '../domain/policy.js';
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
  const decided = requestStep(run.ledger, request, policy, window, Date.now(), uuid4(), rules);
  run.apply(decided);
  if (via === 'update') {
    run.updateAnswers.set(request.requestId, decided.answer);
    return;
  }
  run.remember(decided.answer);
  const delivered = await answer(request, decided.answer);
  if (!delivered && decided.granted !== null)
    run.apply(withdrawStep(run.ledger, decided.granted.leaseId, request.holderWorkflowId));
}

/** The holder's release: charged by its step, then reported to the host's audit log. */
export async function handleRelease(
  run: HostRun,
  { policy }: HostRules,
  release: LeaseRelease,
): Promise<void> {
  const released = releaseStep(run.ledger, release, policy, Date.now(), run.host);
  run.apply(released);
  if (released.report === null) return;
  try {
    await reportBudget(released.report);
  } catch (err) {
    run.decide({ code: 'budget_report_failed', params: { failure: String(err) } });
  }
}

/**
 * The holder vanished or hung: under the 0.2 rules its canary is restored first (its workflow may have been
 * terminated mid-canary), then the expiry's step charges it.
 */
export async function expireLease(run: HostRun, { policy }: HostRules, expired: Lease): Promise<void> {
  const recovered = expiryNeedsRecovery(expired, run.safeRules)
    ? await recoverAbandoned(run.host, expired)
    : ({ action: 'none' } as const);
  run.apply(expiryStep(run.ledger, expired, recovered, policy, Date.now()));
}

/** The recoverAbandonedLease activity's outcome as the expiry's decision records it. */
async function recoverAbandoned(host: string, expired: Lease): Promise<AbandonedLeaseRecovery> {
  try {
    const recovery = await recoverAbandonedLease({
      host,
      kind: expired.kind,
      leaseId: expired.leaseId,
      holderWorkflowId: expired.holderWorkflowId,
    });
    if (recovery.action === 'restored') return { action: 'restored', downtimeMs: recovery.downtimeMs };
    if (recovery.action === 'kept_promotion') return { action: 'kept_promotion' };
    return { action: 'left_to_holder', detail: recovery.detail };
  } catch (err) {
    const failure = `restoring the abandoned canary of ${expired.kind} failed: ${describeFailure(err)}`;
    return { action: 'restore_failed', failure, host };
  }
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
  const decided = operatorLeaseStep(run.ledger, request, policy, window, Date.now(), uuid4());
  run.apply(decided);
  run.remember(decided.answer);
  return decided.answer;
}
