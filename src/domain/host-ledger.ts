// The GPU host's side of every canary decision: the nightly downtime budget, the cooldown, the single
// lease, the pause switch and the restore-failure latch. Pure, so the coordinator workflow stays thin
// and every refusal reason is unit-tested.
import { formatDuration } from './duration-text.js';
import { type KindAction, kindAction } from './kind-policy.js';
import {
  type MaintenanceWindow,
  type WindowOccurrence,
  currentWindow,
  describeNextWindow,
  formatLocalTime,
  parseMaintenanceWindow,
  upcomingWindow,
} from './maintenance-window.js';
import { type HealingPolicy, hostMaxCanariesOf, kindActionsOf } from './policy.js';

export interface BudgetLedger {
  /** Opening (epoch ms) of the window this ledger belongs to; null before the first window. */
  windowOpensAt: number | null;
  /** Downtime charged in that window, ms (restores included). */
  spentMs: number;
  /** Part of spentMs that went past the budget (only restores may do that), ms. */
  overrunMs: number;
  /** Canaries run in that window. */
  canaries: number;
}

export interface Lease {
  leaseId: string;
  holderWorkflowId: string;
  /** The service the canary restarts (0.5; absent in leases of older runs and operator leases). */
  service?: string | null;
  kind: string;
  grantedAt: number;
  expiresAt: number;
  predictedDowntimeMs: number;
  budgetLeftMs: number;
  windowOpensAt: number;
  windowClosesAt: number;
}

export interface OperatorMark {
  at: number;
  by: string;
  reason: string;
}

export interface RestoreFailure {
  at: number;
  kind: string;
  /** The service whose restore failed (0.5; absent in older records). */
  service?: string;
  message: string;
}

export interface HostLedgerState {
  ledger: BudgetLedger;
  cooldownUntil: number | null;
  lease: Lease | null;
  paused: OperatorMark | null;
  restoreFailure: RestoreFailure | null;
  /** When each canary of the last 7 days was granted, all kinds together (absent before 0.2). */
  canaryStarts?: number[];
}

/** The host-wide canary cap looks back this far. */
export const CANARY_CAP_PERIOD_MS = 7 * 86_400_000;

export interface LeaseRequest {
  requestId: string;
  holderWorkflowId: string;
  /** The service the canary would restart, by name (0.5; absent from older workers). */
  service?: string | null;
  kind: string;
  predictedDowntimeMs: number;
}

export type LeaseVerdict =
  | { granted: true; lease: Lease }
  | { granted: false; reason: string; code: RefusalCode; retryAt: number | null };

/** Why the host refused a lease, in the order the rules are checked (docs/workflows.md). */
export const REFUSAL_CODES = [
  'kind_cannot_heal',
  'restore_failure_latched',
  'paused',
  'outside_window',
  'busy',
  'cooldown',
  'host_canary_cap',
  'budget',
  'window_too_short',
  'invalid_request',
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/** The 0.2 rules a coordinator run applies (all of them once its patch is in; none when replaying 0.1). */
export interface LeaseRules {
  /** Only kinds whose action is heal get a canary lease. */
  kindPolicy: boolean;
  /** At most hostMaxCanaries7d canaries per host in any 7 days, all kinds together. */
  hostCap: boolean;
  /**
   * 0.3: a holder that asks again while it holds the host's lease lost the answer (a holder runs one canary
   * at a time, so none runs under that lease): the unused lease is given up, charged nothing, and the new
   * request decided as any other — never "busy" on its own lease until it expires.
   */
  ownLeaseGivenUp?: boolean;
}

/** The coordinator's answer to a lease request: the `lease` update's result (0.2: the `leaseDecision` signal). */
export interface LeaseDecision {
  requestId: string;
  granted: boolean;
  leaseId?: string;
  reason: string;
  /** Why it was refused, as a code (absent when granted, and in answers of 0.2 coordinators). */
  refusal?: RefusalCode;
  /** When asking again may succeed (epoch ms), for refusals that lapse within the window. */
  retryAt?: number | null;
  /** When a granted lease is taken back if not released (operator leases; epoch ms). */
  expiresAt?: number;
  budgetLeftMs: number;
  budgetTotalMs: number;
  cooldownUntil: number | null;
}

export const RULES_0_1: LeaseRules = { kindPolicy: false, hostCap: false };
export const RULES_0_2: LeaseRules = { kindPolicy: true, hostCap: true };
export const RULES_0_3: LeaseRules = { kindPolicy: true, hostCap: true, ownLeaseGivenUp: true };

export const BUSY_RETRY_MS = 60_000;

export function emptyLedger(): BudgetLedger {
  return { windowOpensAt: null, spentMs: 0, overrunMs: 0, canaries: 0 };
}

export function initialHostLedgerState(): HostLedgerState {
  return { ledger: emptyLedger(), cooldownUntil: null, lease: null, paused: null, restoreFailure: null };
}

/** The ledger for the window open at `now`: a new window opening resets the budget. */
export function ledgerFor(ledger: BudgetLedger, occurrence: WindowOccurrence | null): BudgetLedger {
  if (occurrence === null || ledger.windowOpensAt === occurrence.opensAt) return ledger;
  return { windowOpensAt: occurrence.opensAt, spentMs: 0, overrunMs: 0, canaries: 0 };
}

export function budgetTotalMs(policy: HealingPolicy): number {
  return policy.maxDowntimeSeconds * 1000;
}

/**
 * Budget left in the window open at `now`, or else in the next one: it resets when a window opens, except
 * for what an operator's change outside the window was charged to it in advance (healctl rollback).
 */
export function budgetLeftMs(
  state: Pick<HostLedgerState, 'ledger'>,
  policy: HealingPolicy,
  window: MaintenanceWindow,
  now: number,
): number {
  const ledger = ledgerFor(state.ledger, upcomingWindow(window, now));
  return Math.max(0, budgetTotalMs(policy) - ledger.spentMs);
}

export interface HostFiguresNow {
  budgetLeftMs: number;
  budgetTotalMs: number;
  cooldownLeftMs: number;
  windowOpen: boolean;
}

/**
 * The figures a person or a scrape needs, at `now` (not at the coordinator's last task: a cooldown that
 * ended a minute ago is over, and a window that opened since has reset the budget).
 */
export function hostFiguresAt(
  state: Pick<HostLedgerState, 'ledger' | 'cooldownUntil'>,
  policy: HealingPolicy,
  now: number,
): HostFiguresNow {
  const window = parseMaintenanceWindow(policy.maintenanceWindow, policy.maintenanceTimeZone);
  return {
    budgetLeftMs: budgetLeftMs(state, policy, window, now),
    budgetTotalMs: budgetTotalMs(policy),
    cooldownLeftMs: state.cooldownUntil === null ? 0 : Math.max(0, state.cooldownUntil - now),
    windowOpen: currentWindow(window, now) !== null,
  };
}

/** An expired lease is one whose holder vanished or hung: the coordinator takes it back. */
export function leaseExpired(lease: Lease | null, now: number): boolean {
  return lease !== null && lease.expiresAt <= now;
}

/**
 * Decide one lease request. Order matters: the first refusal is the one reported, from the most
 * to the least serious, so an operator sees the reason that needs them.
 */
export function decideLease(
  state: HostLedgerState,
  request: LeaseRequest,
  policy: HealingPolicy,
  window: MaintenanceWindow,
  now: number,
  leaseId: string,
  rules: LeaseRules = RULES_0_3,
): LeaseVerdict {
  const refuse = (code: RefusalCode, reason: string, retryAt: number | null = null): LeaseVerdict => ({
    granted: false,
    code,
    reason,
    retryAt,
  });
  const tz = window.timeZone;
  if (!Number.isFinite(request.predictedDowntimeMs) || request.predictedDowntimeMs <= 0) {
    return refuse(
      'invalid_request',
      `predicted downtime ${String(request.predictedDowntimeMs)} ms is not a positive number`,
    );
  }
  const action: KindAction = kindAction(request.kind, kindActionsOf(policy));
  if (rules.kindPolicy && action !== 'heal') {
    return refuse(
      'kind_cannot_heal',
      `${request.kind} is a kind that ${action === 'alert' ? 'only alerts (a hardware fault is never retuned)' : 'only counts'}: no config canary for it`,
    );
  }
  if (state.restoreFailure) {
    const f = state.restoreFailure;
    return refuse(
      'restore_failure_latched',
      `restore failed at ${formatLocalTime(f.at, tz)} ${tz} (${f.kind}: ${f.message}); canaries stop on this host until an operator acknowledges (healctl ack)`,
    );
  }
  if (state.paused) {
    return refuse(
      'paused',
      `host paused by ${state.paused.by} at ${formatLocalTime(state.paused.at, tz)}: ${state.paused.reason}`,
    );
  }
  const occurrence = currentWindow(window, now);
  if (occurrence === null) {
    return refuse('outside_window', `outside the maintenance window; ${describeNextWindow(window, now)}`);
  }
  if (state.lease && !leaseExpired(state.lease, now)) {
    return refuse(
      'busy',
      `another canary holds the host (${state.lease.kind}${state.lease.service ? ` on service ${state.lease.service}` : ''}, since ${formatLocalTime(state.lease.grantedAt, tz)}); one canary at a time per host`,
      Math.min(now + BUSY_RETRY_MS, occurrence.closesAt),
    );
  }
  if (state.cooldownUntil !== null && state.cooldownUntil > now) {
    const retryAt = state.cooldownUntil < occurrence.closesAt ? state.cooldownUntil : null;
    return refuse(
      'cooldown',
      `cooldown: ${formatDuration(state.cooldownUntil - now)} left (until ${formatLocalTime(state.cooldownUntil, tz)} ${tz})`,
      retryAt,
    );
  }
  const recent = recentCanaryStarts(state, now);
  if (rules.hostCap && recent.length >= hostMaxCanariesOf(policy)) {
    const oldest = recent[0] as number;
    return refuse(
      'host_canary_cap',
      `${recent.length} canaries on this host in 7 days (all kinds), the most allowed (KLR_HOST_MAX_CANARIES_7D=${hostMaxCanariesOf(policy)}): the next is possible after ${formatLocalTime(oldest + CANARY_CAP_PERIOD_MS, tz)} ${tz} on ${new Date(oldest + CANARY_CAP_PERIOD_MS).toISOString().slice(0, 10)}; a config that keeps failing wants a person`,
    );
  }
  const ledger = ledgerFor(state.ledger, occurrence);
  const left = Math.max(0, budgetTotalMs(policy) - ledger.spentMs);
  if (left < request.predictedDowntimeMs) {
    return refuse(
      'budget',
      `budget ${formatDuration(left)} left < predicted ${formatDuration(request.predictedDowntimeMs)}`,
    );
  }
  const windowLeft = occurrence.closesAt - now;
  if (windowLeft < request.predictedDowntimeMs) {
    return refuse(
      'window_too_short',
      `window closes in ${formatDuration(windowLeft)} < predicted ${formatDuration(request.predictedDowntimeMs)}`,
    );
  }
  return {
    granted: true,
    lease: {
      leaseId,
      holderWorkflowId: request.holderWorkflowId,
      ...(request.service ? { service: request.service } : {}),
      kind: request.kind,
      grantedAt: now,
      expiresAt: now + policy.leaseTtlSeconds * 1000,
      predictedDowntimeMs: request.predictedDowntimeMs,
      budgetLeftMs: left,
      windowOpensAt: occurrence.opensAt,
      windowClosesAt: occurrence.closesAt,
    },
  };
}

/** Canaries granted in the 7 days before `now`, oldest first. */
/** The host after granting `lease` now: the lease held, the ledger on the open window. */
export function grantLease(
  state: HostLedgerState,
  lease: Lease,
  window: MaintenanceWindow,
  now: number,
): HostLedgerState {
  return { ...state, ledger: ledgerFor(state.ledger, currentWindow(window, now)), lease };
}

/** The coordinator's answer to a granted canary lease (also the decision's reason). */
export function leaseGrantText(predictedDowntimeMs: number, budgetLeftMs: number): string {
  return `granted: predicted ${formatDuration(predictedDowntimeMs)} fits budget ${formatDuration(budgetLeftMs)} left`;
}

/**
 * A canary's lease request, decided: the host after it (the lease held when granted) and the answer the
 * requester gets, with the host's figures as they were when it asked.
 */
export function answerLeaseRequest(
  state: HostLedgerState,
  request: LeaseRequest,
  policy: HealingPolicy,
  window: MaintenanceWindow,
  now: number,
  leaseId: string,
  rules: LeaseRules,
): { state: HostLedgerState; verdict: LeaseVerdict; answer: LeaseDecision; givenUp: Lease | null } {
  const held = state.lease;
  const own = rules.ownLeaseGivenUp === true && held?.holderWorkflowId === request.holderWorkflowId;
  const host = own ? { ...state, lease: null } : state;
  const verdict = decideLease(host, request, policy, window, now, leaseId, rules);
  const figures = {
    budgetLeftMs: budgetLeftMs(host, policy, window, now),
    budgetTotalMs: budgetTotalMs(policy),
    cooldownUntil: host.cooldownUntil,
  };
  const { requestId } = request;
  if (!verdict.granted) {
    const refusal = { reason: verdict.reason, refusal: verdict.code, retryAt: verdict.retryAt };
    return {
      state: host,
      verdict,
      answer: { requestId, granted: false, ...refusal, ...figures },
      givenUp: own ? held : null,
    };
  }
  const reason = leaseGrantText(request.predictedDowntimeMs, verdict.lease.budgetLeftMs);
  return {
    state: grantLease(host, verdict.lease, window, now),
    verdict,
    answer: { requestId, granted: true, leaseId: verdict.lease.leaseId, reason, ...figures },
    givenUp: own ? held : null,
  };
}

export function recentCanaryStarts(state: HostLedgerState, now: number): number[] {
  return (state.canaryStarts ?? []).filter((t) => t > now - CANARY_CAP_PERIOD_MS && t <= now);
}

/** An operator's change of the live service (healctl rollback): it holds the lease like a canary. */
export interface OperatorLeaseRequest {
  requestId: string;
  /** What the operator does, e.g. "rollback". */
  purpose: 'rollback';
  by: string;
  reason: string;
  predictedDowntimeMs: number;
}

/**
 * Decide an operator's lease. Unlike a canary it may run outside the window, while paused or latched (it is
 * the person acting), but never while a canary or another operator change holds the host; its downtime is
 * charged to the window open now or, outside one, to the next one.
 */
export function decideOperatorLease(
  state: HostLedgerState,
  request: OperatorLeaseRequest,
  policy: HealingPolicy,
  window: MaintenanceWindow,
  now: number,
  leaseId: string,
): LeaseVerdict {
  const tz = window.timeZone;
  if (state.lease && !leaseExpired(state.lease, now)) {
    return {
      granted: false,
      code: 'busy',
      reason: `${state.lease.kind === request.purpose ? 'another operator change' : `a ${state.lease.kind} canary`} holds the host since ${formatLocalTime(state.lease.grantedAt, tz)} ${tz} (lease ${state.lease.leaseId}, held until ${formatLocalTime(state.lease.expiresAt, tz)} ${tz} at the latest): it will promote or restore its own config; wait for it (healctl status), or stop it with healctl cancel`,
      retryAt: null,
    };
  }
  const occurrence = upcomingWindow(window, now);
  const ledger = ledgerFor(state.ledger, occurrence);
  return {
    granted: true,
    lease: {
      leaseId,
      holderWorkflowId: `operator:${request.by}`,
      kind: request.purpose,
      grantedAt: now,
      expiresAt: now + policy.leaseTtlSeconds * 1000,
      predictedDowntimeMs: request.predictedDowntimeMs,
      budgetLeftMs: Math.max(0, budgetTotalMs(policy) - ledger.spentMs),
      windowOpensAt: occurrence.opensAt,
      windowClosesAt: occurrence.closesAt,
    },
  };
}

export interface LeaseRelease {
  leaseId: string;
  /** Downtime of the canary and of any restore, ms. */
  downtimeMs: number;
  outcome: 'promoted' | 'restored' | 'restore_failed' | 'not_started' | 'rolled_back' | 'rollback_failed';
  /** Set when the restore finally failed: latches the host. */
  restoreFailure?: string;
  /** What the canary tried and measured, for the host's audit record. */
  canary?: CanaryAudit;
}

export interface CanaryAudit {
  candidateId: string;
  /** The config keys the candidate set (the diff applied to the service's YAML). */
  changes: Record<string, string | number | boolean>;
  reason: string;
  canaryDowntimeMs: number;
  restoreDowntimeMs: number | null;
  measuredVramMb: number | null;
}

/**
 * Charge a finished canary: the downtime goes to the window the lease was granted in (a restore that
 * runs past the budget is charged all the same, and the overrun is recorded), and the cooldown starts.
 */
export function applyRelease(
  state: HostLedgerState,
  release: LeaseRelease,
  policy: HealingPolicy,
  now: number,
): HostLedgerState {
  const lease = state.lease;
  if (!lease || lease.leaseId !== release.leaseId) return state;
  const base = ledgerFor(state.ledger, { opensAt: lease.windowOpensAt, closesAt: lease.windowClosesAt });
  const downtime = Math.max(0, release.downtimeMs);
  const spentMs = base.spentMs + downtime;
  const total = budgetTotalMs(policy);
  const overrunMs = base.overrunMs + Math.max(0, spentMs - Math.max(total, base.spentMs));
  const started = release.outcome !== 'not_started';
  const isCanary = lease.holderWorkflowId.startsWith('operator:') === false;
  const failedForGood = release.outcome === 'restore_failed' || release.outcome === 'rollback_failed';
  return {
    ...state,
    ...(state.canaryStarts !== undefined || (started && isCanary)
      ? {
          canaryStarts: [
            ...(state.canaryStarts ?? []).filter((t) => t > now - CANARY_CAP_PERIOD_MS),
            ...(started && isCanary ? [lease.grantedAt] : []),
          ],
        }
      : {}),
    lease: null,
    ledger: {
      windowOpensAt: base.windowOpensAt,
      spentMs,
      overrunMs,
      canaries: base.canaries + (started ? 1 : 0),
    },
    cooldownUntil: started ? now + policy.cooldownHours * 3600_000 : state.cooldownUntil,
    restoreFailure: failedForGood
      ? {
          at: now,
          kind: lease.kind,
          ...(lease.service ? { service: lease.service } : {}),
          message: release.restoreFailure ?? `${release.outcome.replace('_', ' ')}`,
        }
      : state.restoreFailure,
  };
}
