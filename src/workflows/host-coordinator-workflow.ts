// HostCoordinatorWorkflow(host): the one place that says yes or no to a canary on a GPU host. Healing
// workflows of every kind ask it for the lease; it checks the window, the nightly budget, the cooldown,
// the pause switch and the restore-failure latch, answers by signal, and charges the downtime on release.
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostActivities } from '../activities/types.js';
import {
  type AbandonedLeaseRecovery,
  type DecisionEvent,
  type RefusedMessage,
  leaseGrantText,
} from '../domain/decision-codes.js';
import { appendDecision, type Decision, decisionOf } from '../domain/decision-log.js';
import { formatDuration } from '../domain/duration-text.js';
import {
  type HostLedgerState,
  type Lease,
  type LeaseRelease,
  type LeaseRequest,
  type OperatorLeaseRequest,
  RULES_0_1,
  RULES_0_2,
  applyRelease,
  budgetLeftMs,
  budgetTotalMs,
  decideLease,
  decideOperatorLease,
  initialHostLedgerState,
  leaseExpired,
  ledgerFor,
} from '../domain/host-ledger.js';
import { markdownText } from '../domain/markdown-text.js';
import {
  type MaintenanceWindow,
  currentWindow,
  formatLocalTime,
  parseMaintenanceWindow,
} from '../domain/maintenance-window.js';
import type { HealingPolicy } from '../domain/policy.js';
import {
  type HostCounters,
  bump,
  copyHostCounters,
  emptyHostCounters,
  overrunAddedMs,
} from '../domain/workflow-counters.js';
import { type LeaseDecision, type OperatorAction, leaseDecisionSignal } from './healing-messages.js';
import { RESTORE_ACTIVITY_OPTIONS } from './activity-options.js';
import { describeFailure } from './failure-text.js';
import { guardSignal, guardUpdate } from './handler-guard.js';
import {
  type HostCoordinatorInput,
  type HostStateView,
  type OperatorLeaseAnswer,
  acknowledgeRestoreFailureUpdate,
  acquireOperatorLeaseUpdate,
  hostStateQuery,
  pauseHostUpdate,
  releaseLeaseSignal,
  requestLeaseSignal,
  resumeHostUpdate,
} from './host-coordinator-messages.js';
import {
  check,
  leaseReleaseSchema,
  leaseRequestSchema,
  operatorLeaseRequestSchema,
} from './message-schemas.js';
import { validateOperatorAction } from './operator-action.js';
import { readHostInput } from './workflow-input.js';

const { loadHealingPolicy } = proxyLocalActivities<HostActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumInterval: '30 seconds' },
});

const { reportBudget } = proxyActivities<HostActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

// The restore of an abandoned canary: the same timeouts and retries as the healing workflow's restore.
const { recoverAbandonedLease } = proxyActivities<HostActivities>(RESTORE_ACTIVITY_OPTIONS);

const ANSWERED_CAP = 200;
/** The same patch as HealingWorkflow's: the 0.2 lease rules (kind policy, host-wide canary cap). */
const SAFE_RULES_PATCH = 'safe-to-act-alone';

export async function HostCoordinatorWorkflow(input: HostCoordinatorInput): Promise<void> {
  const workflowId = workflowInfo().workflowId;
  const reading = readHostInput(input, workflowId);
  if (!reading.ok) throw ApplicationFailure.nonRetryable(reading.error, 'InvalidWorkflowInput');
  const { host, carried } = reading.value;
  let ledger: HostLedgerState = carried?.ledger ?? initialHostLedgerState();
  const decisions: Decision[] = carried?.decisions ?? [];
  const answered = new Map<string, LeaseDecision>(carried?.answered ?? []);
  const counters: HostCounters = carried?.counters ?? emptyHostCounters();
  const runs = (carried?.runs ?? 0) + 1;
  let safeRules = false;
  /** Workflow code only (never a query or validator): patched() may record a marker. */
  const refreshRules = () => {
    safeRules ||= patched(SAFE_RULES_PATCH);
  };
  const requests: LeaseRequest[] = [];
  const releases: LeaseRelease[] = [];
  /** Messages handled by this run: bounds history even where the server reports no length. */
  let messagesThisRun = 0;
  let policy: HealingPolicy | undefined;
  let window: MaintenanceWindow | undefined;

  const decide = (event: DecisionEvent, by?: string) => {
    appendDecision(decisions, decisionOf(event, Date.now(), by));
    publish();
  };

  /** The Web UI's current details (markdown): budget, cooldown, lease, pause, latch, last decision. */
  const publish = () => {
    const v = view();
    const last = decisions[decisions.length - 1];
    const md = markdownText;
    const tz = policy?.maintenanceTimeZone ?? 'UTC';
    const now = Date.now();
    // Written when the workflow runs and read at any time later: times, not "N minutes left".
    setCurrentDetails(
      [
        `**GPU host ${host}** — ${v.restoreFailure ? 'canaries stopped: a restore failed (healctl ack)' : v.paused ? 'paused' : v.lease ? `${v.lease.kind === 'rollback' ? 'operator rollback' : 'canary'} running (${md(v.lease.kind)})` : 'idle'}`,
        [
          `- Downtime budget: ${formatDuration(v.budgetLeftMs)} left of ${formatDuration(v.budgetTotalMs)} as of ${formatLocalTime(now, tz)} ${tz}` +
            (v.overrunMs > 0 ? `, overrun ${formatDuration(v.overrunMs)}` : ''),
          `- Cooldown: ${ledger.cooldownUntil !== null && ledger.cooldownUntil > now ? `until ${formatLocalTime(ledger.cooldownUntil, tz)} ${tz} (${v.cooldownUntil})` : 'over'}`,
          `- Paused: ${v.paused ? `by ${md(v.paused.by, 100)}: ${md(v.paused.reason)}` : 'no'}`,
          `- Restore failure: ${v.restoreFailure ? `${md(v.restoreFailure.kind)} at ${v.restoreFailure.at}: ${md(v.restoreFailure.message)}` : 'none'}`,
        ].join('\n'),
        last
          ? `**Last decision:** ${md(last.action)} — ${md(last.reason)}${last.by ? ` (by ${md(last.by, 100)})` : ''}`
          : '',
      ]
        .filter(Boolean)
        .join('\n\n'),
    );
  };

  const view = (): HostStateView => {
    const now = Date.now();
    const occurrence = window ? currentWindow(window, now) : null;
    const current = ledgerFor(ledger.ledger, occurrence);
    return {
      workflowId,
      host,
      now: iso(now),
      budgetTotalMs: policy ? budgetTotalMs(policy) : 0,
      budgetLeftMs: policy && window ? budgetLeftMs(ledger, policy, window, now) : 0,
      budgetSpentMs: occurrence ? current.spentMs : 0,
      overrunMs: occurrence ? current.overrunMs : 0,
      windowOpensAt: current.windowOpensAt === null ? null : iso(current.windowOpensAt),
      cooldownUntil: ledger.cooldownUntil === null ? null : iso(ledger.cooldownUntil),
      cooldownLeftMs: ledger.cooldownUntil === null ? 0 : Math.max(0, ledger.cooldownUntil - now),
      lease: ledger.lease,
      paused: ledger.paused ? { ...ledger.paused, at: iso(ledger.paused.at) } : null,
      restoreFailure: ledger.restoreFailure
        ? { ...ledger.restoreFailure, at: iso(ledger.restoreFailure.at) }
        : null,
      ledger: { ...ledger.ledger },
      counters: copyHostCounters(counters),
      firstRunId: workflowInfo().firstExecutionRunId,
      decisions: [...decisions],
      policy: policy ?? null,
      runs,
    };
  };

  /** An operator's lease (healctl rollback): answered once per request id, like a canary's. */
  const grantOperatorLease = (request: OperatorLeaseRequest): OperatorLeaseAnswer => {
    const activePolicy = policy as HealingPolicy; // the handler waits for both
    const activeWindow = window as MaintenanceWindow;
    const previous = answered.get(request.requestId);
    const now = Date.now();
    let decision: LeaseDecision;
    if (previous) {
      decision = previous;
    } else {
      const verdict = decideOperatorLease(ledger, request, activePolicy, activeWindow, now, uuid4());
      const figures = { budgetTotalMs: budgetTotalMs(activePolicy), cooldownUntil: ledger.cooldownUntil };
      if (verdict.granted) {
        ledger = { ...ledger, lease: verdict.lease };
        decision = {
          requestId: request.requestId,
          granted: true,
          leaseId: verdict.lease.leaseId,
          reason: `granted to ${request.by} for a ${request.purpose}: its downtime is charged to the window opening ${formatLocalTime(verdict.lease.windowOpensAt, activeWindow.timeZone)} ${activeWindow.timeZone} (${formatDuration(verdict.lease.budgetLeftMs)} left)`,
          expiresAt: verdict.lease.expiresAt,
          budgetLeftMs: verdict.lease.budgetLeftMs,
          ...figures,
        };
        decide(
          {
            code: 'operator_lease_granted',
            params: { purpose: request.purpose, reason: request.reason, grant: decision.reason },
          },
          request.by,
        );
      } else {
        bump(counters.leaseRefusals, verdict.code);
        decision = {
          requestId: request.requestId,
          granted: false,
          reason: verdict.reason,
          refusal: verdict.code,
          budgetLeftMs: budgetLeftMs(ledger, activePolicy, activeWindow, now),
          ...figures,
        };
        decide(
          {
            code: 'operator_lease_refused',
            params: { purpose: request.purpose, reason: verdict.reason, refusal: verdict.code },
          },
          request.by,
        );
      }
      answered.set(request.requestId, decision);
      while (answered.size > ANSWERED_CAP) answered.delete(answered.keys().next().value as string);
    }
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
  };

  /** A lease message that does not have the expected shape: recorded, never acted on. */
  const refuseMessage = (what: RefusedMessage) => (problem: string) =>
    decide({ code: 'message_rejected', params: { message: what, problem } });

  setHandler(
    requestLeaseSignal,
    guardSignal((payload: LeaseRequest) => {
      messagesThisRun++;
      refreshRules();
      const checked = check(leaseRequestSchema, payload);
      if (checked.ok) requests.push(checked.value);
      else refuseMessage('lease request')(checked.error);
    }, refuseMessage('lease request')),
  );
  setHandler(
    releaseLeaseSignal,
    guardSignal((payload: LeaseRelease) => {
      messagesThisRun++;
      refreshRules();
      const checked = check(leaseReleaseSchema, payload);
      if (checked.ok) releases.push(checked.value);
      else refuseMessage('lease release')(checked.error);
    }, refuseMessage('lease release')),
  );
  setHandler(hostStateQuery, view);
  setHandler(
    pauseHostUpdate,
    guardUpdate(
      'pause',
      (action: OperatorAction) => {
        ledger = { ...ledger, paused: { at: Date.now(), by: action.by, reason: action.reason } };
        decide({ code: 'host_paused', params: { reason: action.reason } }, action.by);
        return view();
      },
      refuseMessage('pause'),
    ),
    { validator: validateOperatorAction },
  );
  setHandler(
    resumeHostUpdate,
    guardUpdate(
      'resume',
      (action: OperatorAction) => {
        const was = ledger.paused;
        ledger = { ...ledger, paused: null };
        decide(
          was
            ? { code: 'host_resumed', params: { reason: action.reason } }
            : { code: 'host_not_paused', params: {} },
          action.by,
        );
        return view();
      },
      refuseMessage('resume'),
    ),
    { validator: validateOperatorAction },
  );
  setHandler(
    acknowledgeRestoreFailureUpdate,
    guardUpdate(
      'acknowledgeRestoreFailure',
      (action: OperatorAction) => {
        const was = ledger.restoreFailure;
        ledger = { ...ledger, restoreFailure: null };
        decide(
          was
            ? {
                code: 'restore_failure_acknowledged',
                params: { reason: action.reason, kind: was.kind, failure: was.message },
              }
            : { code: 'no_restore_failure_latched', params: {} },
          action.by,
        );
        return { ...view(), acknowledged: was ? { ...was, at: iso(was.at) } : null };
      },
      refuseMessage('acknowledgeRestoreFailure'),
    ),
    { validator: validateOperatorAction },
  );
  setHandler(
    acquireOperatorLeaseUpdate,
    guardUpdate(
      'acquireOperatorLease',
      async (request: OperatorLeaseRequest): Promise<OperatorLeaseAnswer> => {
        refreshRules();
        await condition(() => policy !== undefined && window !== undefined);
        return grantOperatorLease(request);
      },
      refuseMessage('acquireOperatorLease'),
    ),
    {
      validator: (request: OperatorLeaseRequest) => {
        const checked = check(operatorLeaseRequestSchema, request);
        if (!checked.ok) throw new TypeError(checked.error);
      },
    },
  );

  for (const note of reading.notes) decide({ code: 'start_input_refused', params: { note } });
  policy = await loadHealingPolicy();
  window = parseMaintenanceWindow(policy.maintenanceWindow, policy.maintenanceTimeZone);
  const activePolicy = policy;
  const activeWindow = window;

  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested ||
    workflowInfo().historyLength >= activePolicy.historyEventsLimit ||
    messagesThisRun * 4 >= activePolicy.historyEventsLimit;

  const answer = async (request: LeaseRequest, decision: LeaseDecision): Promise<boolean> => {
    try {
      await getExternalWorkflowHandle(request.holderWorkflowId).signal(leaseDecisionSignal, decision);
      return true;
    } catch (err) {
      log.warn('lease requester unreachable', { requester: request.holderWorkflowId, error: String(err) });
      return false;
    }
  };

  const handleRelease = async (release: LeaseRelease) => {
    const now = Date.now();
    const lease = ledger.lease;
    if (!lease || lease.leaseId !== release.leaseId) {
      decide({ code: 'release_ignored', params: { leaseId: release.leaseId } });
      return;
    }
    const before = ledger.ledger;
    ledger = applyRelease(ledger, release, activePolicy, now);
    counters.overrunMs += overrunAddedMs(before, ledger.ledger);
    const left = Math.max(0, budgetTotalMs(activePolicy) - ledger.ledger.spentMs);
    decide({
      code: 'lease_released',
      params: {
        kind: lease.kind,
        outcome: release.outcome,
        downtimeMs: release.downtimeMs,
        budgetLeftMs: left,
        overrunMs: ledger.ledger.overrunMs,
        cooldownMs: ledger.cooldownUntil !== null ? ledger.cooldownUntil - now : null,
      },
    });
    if (release.outcome === 'restore_failed' || release.outcome === 'rollback_failed') {
      decide({
        code: 'canaries_stopped',
        params: {
          what: release.outcome === 'restore_failed' ? 'restore' : 'rollback',
          kind: lease.kind,
          failure: release.restoreFailure ?? 'unknown',
          host,
        },
      });
    }
    try {
      await reportBudget({
        host,
        at: iso(now),
        windowOpensAt: ledger.ledger.windowOpensAt === null ? null : iso(ledger.ledger.windowOpensAt),
        budgetTotalMs: budgetTotalMs(activePolicy),
        budgetSpentMs: ledger.ledger.spentMs,
        budgetLeftMs: left,
        overrunMs: ledger.ledger.overrunMs,
        cooldownUntil: ledger.cooldownUntil === null ? null : iso(ledger.cooldownUntil),
        event: {
          kind: lease.kind,
          outcome: release.outcome,
          downtimeMs: release.downtimeMs,
          ...(release.restoreFailure ? { restoreFailure: release.restoreFailure } : {}),
          ...(release.canary ? { canary: release.canary } : {}),
        },
      });
    } catch (err) {
      decide({ code: 'budget_report_failed', params: { failure: String(err) } });
    }
  };

  const handleRequest = async (request: LeaseRequest) => {
    const previous = answered.get(request.requestId);
    if (previous) {
      // A redelivered request (activity retry): answer the same again, never grant twice.
      await answer(request, previous);
      return;
    }
    const now = Date.now();
    const rules = safeRules ? RULES_0_2 : RULES_0_1;
    const verdict = decideLease(ledger, request, activePolicy, activeWindow, now, uuid4(), rules);
    const figures = {
      budgetLeftMs: budgetLeftMs(ledger, activePolicy, activeWindow, now),
      budgetTotalMs: budgetTotalMs(activePolicy),
      cooldownUntil: ledger.cooldownUntil,
    };
    let decision: LeaseDecision;
    if (verdict.granted) {
      ledger = {
        ...ledger,
        ledger: ledgerFor(ledger.ledger, currentWindow(activeWindow, now)),
        lease: verdict.lease,
      };
      decision = {
        requestId: request.requestId,
        granted: true,
        leaseId: verdict.lease.leaseId,
        reason: leaseGrantText(request.predictedDowntimeMs, verdict.lease.budgetLeftMs),
        ...figures,
      };
      decide({
        code: 'lease_granted',
        params: {
          kind: request.kind,
          predictedDowntimeMs: request.predictedDowntimeMs,
          budgetLeftMs: verdict.lease.budgetLeftMs,
        },
      });
    } else {
      bump(counters.leaseRefusals, verdict.code);
      decision = {
        requestId: request.requestId,
        granted: false,
        reason: verdict.reason,
        refusal: verdict.code,
        retryAt: verdict.retryAt,
        ...figures,
      };
      decide({
        code: 'lease_refused',
        params: { kind: request.kind, reason: verdict.reason, refusal: verdict.code },
      });
    }
    answered.set(request.requestId, decision);
    while (answered.size > ANSWERED_CAP) answered.delete(answered.keys().next().value as string);
    const delivered = await answer(request, decision);
    if (!delivered && verdict.granted && ledger.lease?.leaseId === verdict.lease.leaseId) {
      ledger = { ...ledger, lease: null };
      decide({ code: 'lease_withdrawn', params: { holderWorkflowId: request.holderWorkflowId } });
    }
  };

  /**
   * The holder vanished or hung: charge what it was allowed to spend and start the cooldown, since a
   * canary may well have restarted the service. Under the 0.2 rules a canary whose holder no longer runs it
   * is restored first (its workflow may have been terminated mid-canary), and a failed restore latches.
   */
  const expireLease = async (expired: Lease) => {
    let downtimeMs = expired.predictedDowntimeMs;
    let outcome: LeaseRelease['outcome'] = 'restored';
    let restoreFailure: string | undefined;
    let recovered: AbandonedLeaseRecovery = { action: 'none' };
    if (safeRules && !expired.holderWorkflowId.startsWith('operator:')) {
      try {
        const recovery = await recoverAbandonedLease({
          host,
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
        recovered = { action: 'restore_failed', failure: restoreFailure, host };
      }
    }
    const before = ledger.ledger;
    ledger = applyRelease(
      ledger,
      { leaseId: expired.leaseId, downtimeMs, outcome, ...(restoreFailure ? { restoreFailure } : {}) },
      activePolicy,
      Date.now(),
    );
    counters.overrunMs += overrunAddedMs(before, ledger.ledger);
    decide({
      code: 'lease_expired',
      params: { kind: expired.kind, ttlMs: activePolicy.leaseTtlSeconds * 1000, recovery: recovered },
    });
  };

  for (;;) {
    refreshRules();
    publish();
    const lease = ledger.lease;
    const timeout = lease ? Math.max(1, lease.expiresAt - Date.now()) : undefined;
    // Continue-as-new waits for the lease to be released: while one is held, a suggestion to continue
    // must not wake the loop, or it would spin without ever yielding (the task never completes, and the
    // worker thread runs out of stack).
    const woken = () =>
      requests.length > 0 || releases.length > 0 || (ledger.lease === null && shouldContinueAsNew());
    if (timeout === undefined) await condition(woken);
    else await condition(woken, timeout);

    while (releases.length > 0) await handleRelease(releases.shift() as LeaseRelease);
    if (leaseExpired(ledger.lease, Date.now())) await expireLease(ledger.lease!);
    while (requests.length > 0) await handleRequest(requests.shift() as LeaseRequest);

    if (shouldContinueAsNew() && ledger.lease === null) {
      await condition(allHandlersFinished);
      if (requests.length === 0 && releases.length === 0) {
        await continueAsNew<typeof HostCoordinatorWorkflow>({
          host,
          carried: {
            ledger,
            decisions,
            answered: [...answered],
            counters,
            runs,
          },
        });
      }
    }
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
