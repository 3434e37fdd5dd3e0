// The host coordinator's transitions: (host state, event, now) → (host state, decisions, counts, commands).
// A lease request, an operator's lease, a release, an expiry and a withdrawal each become one step; the
// coordinator workflow applies the step (HostRun.apply) and runs its command (report the budget, answer
// the requester). The verdicts themselves are host-ledger.ts.
import type { AbandonedLeaseRecovery, DecisionEvent } from './decision-codes.js';
import { formatDuration } from './duration-text.js';
import {
  type HostLedgerState,
  type Lease,
  type LeaseDecision,
  type LeaseRelease,
  type LeaseRequest,
  type LeaseRules,
  type OperatorLeaseRequest,
  type RefusalCode,
  answerLeaseRequest,
  applyRelease,
  budgetLeftMs,
  budgetTotalMs,
  decideOperatorLease,
} from './host-ledger.js';
import { type MaintenanceWindow, formatLocalTime } from './maintenance-window.js';
import type { HealingPolicy } from './policy.js';
import { overrunAddedMs } from './workflow-counters.js';

/** The host's figures after a release, for its audit log (the reportBudget activity). */
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
    /** The service the lease was for (0.5; absent in older records and operator leases). */
    service?: string;
    outcome: LeaseRelease['outcome'];
    downtimeMs: number;
    restoreFailure?: string;
    canary?: LeaseRelease['canary'];
  };
}

/** A decision to record, with the person who caused it (operator actions). */
export interface HostDecision {
  event: DecisionEvent;
  by?: string;
}

export interface HostStep {
  state: HostLedgerState;
  /** Recorded in this order. */
  decisions: HostDecision[];
  /** Restore overrun this step added, ms (the coordinator's counter). */
  overrunAddedMs: number;
  /** The refusal this step counted, if any (the coordinator's counter by reason). */
  refusal: RefusalCode | null;
  /** Command: report these figures to the host's audit log. */
  report: BudgetReport | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

const step = (state: HostLedgerState, decisions: HostDecision[], more: Partial<HostStep> = {}): HostStep => ({
  state,
  decisions,
  overrunAddedMs: 0,
  refusal: null,
  report: null,
  ...more,
});

/** A canary's lease request, decided: the step, and the answer the requester gets. */
export function requestStep(
  state: HostLedgerState,
  request: LeaseRequest,
  policy: HealingPolicy,
  window: MaintenanceWindow,
  now: number,
  leaseId: string,
  rules: LeaseRules,
): HostStep & { answer: LeaseDecision; granted: Lease | null } {
  const decided = answerLeaseRequest(state, request, policy, window, now, leaseId, rules);
  const { verdict } = decided;
  const decisions: HostDecision[] = [];
  if (decided.givenUp !== null) {
    const { kind, leaseId: given } = decided.givenUp;
    decisions.push({ event: { code: 'lease_given_up', params: { kind, leaseId: given } } });
  }
  if (verdict.granted) {
    decisions.push({
      event: {
        code: 'lease_granted',
        params: {
          kind: request.kind,
          predictedDowntimeMs: request.predictedDowntimeMs,
          budgetLeftMs: verdict.lease.budgetLeftMs,
        },
      },
    });
    return { ...step(decided.state, decisions), answer: decided.answer, granted: verdict.lease };
  }
  decisions.push({
    event: {
      code: 'lease_refused',
      params: { kind: request.kind, reason: verdict.reason, refusal: verdict.code },
    },
  });
  return {
    ...step(decided.state, decisions, { refusal: verdict.code }),
    answer: decided.answer,
    granted: null,
  };
}

/** A granted lease whose answer could not be delivered (0.2 signal answers): taken back, charged nothing. */
export function withdrawStep(state: HostLedgerState, leaseId: string, holderWorkflowId: string): HostStep {
  if (state.lease?.leaseId !== leaseId) return step(state, []);
  return step({ ...state, lease: null }, [
    { event: { code: 'lease_withdrawn', params: { holderWorkflowId } } },
  ]);
}

/** An operator's lease (healctl rollback), decided: the step, and the answer. */
export function operatorLeaseStep(
  state: HostLedgerState,
  request: OperatorLeaseRequest,
  policy: HealingPolicy,
  window: MaintenanceWindow,
  now: number,
  leaseId: string,
): HostStep & { answer: LeaseDecision } {
  const verdict = decideOperatorLease(state, request, policy, window, now, leaseId);
  const figures = { budgetTotalMs: budgetTotalMs(policy), cooldownUntil: state.cooldownUntil };
  const { requestId, purpose, by } = request;
  if (verdict.granted) {
    const tz = window.timeZone;
    const reason = `granted to ${by} for a ${purpose}: its downtime is charged to the window opening ${formatLocalTime(verdict.lease.windowOpensAt, tz)} ${tz} (${formatDuration(verdict.lease.budgetLeftMs)} left)`;
    const event: DecisionEvent = {
      code: 'operator_lease_granted',
      params: { purpose, reason: request.reason, grant: reason },
    };
    return {
      ...step({ ...state, lease: verdict.lease }, [{ event, by }]),
      answer: {
        requestId,
        granted: true,
        leaseId: verdict.lease.leaseId,
        reason,
        expiresAt: verdict.lease.expiresAt,
        budgetLeftMs: verdict.lease.budgetLeftMs,
        ...figures,
      },
    };
  }
  const event: DecisionEvent = {
    code: 'operator_lease_refused',
    params: { purpose, reason: verdict.reason, refusal: verdict.code },
  };
  return {
    ...step(state, [{ event, by }], { refusal: verdict.code }),
    answer: {
      requestId,
      granted: false,
      reason: verdict.reason,
      refusal: verdict.code,
      budgetLeftMs: budgetLeftMs(state, policy, window, now),
      ...figures,
    },
  };
}

/** The holder's release: its downtime charged, the cooldown started, a failed restore latched; reported. */
export function releaseStep(
  state: HostLedgerState,
  release: LeaseRelease,
  policy: HealingPolicy,
  now: number,
  host: string,
): HostStep {
  const lease = state.lease;
  if (!lease || lease.leaseId !== release.leaseId) {
    return step(state, [{ event: { code: 'release_ignored', params: { leaseId: release.leaseId } } }]);
  }
  const next = applyRelease(state, release, policy, now);
  const { ledger, cooldownUntil } = next;
  const left = Math.max(0, budgetTotalMs(policy) - ledger.spentMs);
  const decisions: HostDecision[] = [
    {
      event: {
        code: 'lease_released',
        params: {
          kind: lease.kind,
          outcome: release.outcome,
          downtimeMs: release.downtimeMs,
          budgetLeftMs: left,
          overrunMs: ledger.overrunMs,
          cooldownMs: cooldownUntil !== null ? cooldownUntil - now : null,
        },
      },
    },
  ];
  if (release.outcome === 'restore_failed' || release.outcome === 'rollback_failed') {
    decisions.push({
      event: {
        code: 'canaries_stopped',
        params: {
          what: release.outcome === 'restore_failed' ? 'restore' : 'rollback',
          kind: lease.kind,
          failure: release.restoreFailure ?? 'unknown',
          host,
        },
      },
    });
  }
  return step(next, decisions, {
    overrunAddedMs: overrunAddedMs(state.ledger, ledger),
    report: {
      host,
      at: iso(now),
      windowOpensAt: ledger.windowOpensAt === null ? null : iso(ledger.windowOpensAt),
      budgetTotalMs: budgetTotalMs(policy),
      budgetSpentMs: ledger.spentMs,
      budgetLeftMs: left,
      overrunMs: ledger.overrunMs,
      cooldownUntil: cooldownUntil === null ? null : iso(cooldownUntil),
      event: {
        kind: lease.kind,
        ...(lease.service ? { service: lease.service } : {}),
        outcome: release.outcome,
        downtimeMs: release.downtimeMs,
        ...(release.restoreFailure ? { restoreFailure: release.restoreFailure } : {}),
        ...(release.canary ? { canary: release.canary } : {}),
      },
    },
  });
}

/**
 * Whether an expired lease's canary must be restored before it is charged (0.2 rules): its holder may
 * have been terminated mid-canary. An operator's lease is the person's own change, never undone.
 */
export function expiryNeedsRecovery(expired: Lease, safeRules: boolean): boolean {
  return safeRules && !expired.holderWorkflowId.startsWith('operator:');
}

/**
 * The holder vanished or hung: charge what it was allowed to spend (and any restore of its canary) and
 * start the cooldown, since a canary may well have restarted the service; a failed restore latches.
 */
export function expiryStep(
  state: HostLedgerState,
  expired: Lease,
  recovered: AbandonedLeaseRecovery,
  policy: HealingPolicy,
  now: number,
): HostStep {
  const downtimeMs =
    expired.predictedDowntimeMs + (recovered.action === 'restored' ? recovered.downtimeMs : 0);
  const release: LeaseRelease =
    recovered.action === 'restore_failed'
      ? { leaseId: expired.leaseId, downtimeMs, outcome: 'restore_failed', restoreFailure: recovered.failure }
      : { leaseId: expired.leaseId, downtimeMs, outcome: 'restored' };
  const next = applyRelease(state, release, policy, now);
  return step(
    next,
    [
      {
        event: {
          code: 'lease_expired',
          params: { kind: expired.kind, ttlMs: policy.leaseTtlSeconds * 1000, recovery: recovered },
        },
      },
    ],
    { overrunAddedMs: overrunAddedMs(state.ledger, next.ledger) },
  );
}
