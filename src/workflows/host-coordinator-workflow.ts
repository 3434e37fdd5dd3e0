// HostCoordinatorWorkflow(host): the one place that says yes or no to a canary on a GPU host. Healing
// workflows of every kind ask it for the lease; it checks the window, the nightly budget, the cooldown,
// the pause switch and the restore-failure latch, answers by signal, and charges the downtime on release.
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostActivities } from '../activities/types.js';
import { appendDecision, type Decision, type DecisionTopic } from '../domain/decision-log.js';
import { formatDuration } from '../domain/duration-text.js';
import {
  type HostLedgerState,
  type LeaseRelease,
  type LeaseRequest,
  applyRelease,
  budgetLeftMs,
  budgetTotalMs,
  decideLease,
  initialHostLedgerState,
  leaseExpired,
  ledgerFor,
} from '../domain/host-ledger.js';
import {
  type MaintenanceWindow,
  currentWindow,
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
import {
  type HostCoordinatorInput,
  type HostStateView,
  acknowledgeRestoreFailureUpdate,
  hostStateQuery,
  pauseHostUpdate,
  releaseLeaseSignal,
  requestLeaseSignal,
  resumeHostUpdate,
} from './host-coordinator-messages.js';
import { validateOperatorAction } from './operator-action.js';

const { loadHealingPolicy } = proxyLocalActivities<HostActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumInterval: '30 seconds' },
});

const { reportBudget } = proxyActivities<HostActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
});

const ANSWERED_CAP = 200;

export async function HostCoordinatorWorkflow(input: HostCoordinatorInput): Promise<void> {
  const { host } = input;
  const workflowId = workflowInfo().workflowId;
  let ledger: HostLedgerState = input.carried?.ledger ?? initialHostLedgerState();
  const decisions: Decision[] = input.carried?.decisions ?? [];
  const answered = new Map<string, LeaseDecision>(input.carried?.answered ?? []);
  const counters: HostCounters = input.carried?.counters ?? emptyHostCounters();
  const runs = (input.carried?.runs ?? 0) + 1;
  const requests: LeaseRequest[] = [];
  const releases: LeaseRelease[] = [];
  /** Messages handled by this run: bounds history even where the server reports no length. */
  let messagesThisRun = 0;
  let policy: HealingPolicy | undefined;
  let window: MaintenanceWindow | undefined;

  const decide = (topic: DecisionTopic, taken: boolean, action: string, reason: string, by?: string) => {
    appendDecision(decisions, { at: Date.now(), topic, taken, action, reason, ...(by ? { by } : {}) });
    publish();
  };

  /** The Web UI's current details (markdown): budget, cooldown, lease, pause, latch, last decision. */
  const publish = () => {
    const v = view();
    const last = decisions[decisions.length - 1];
    setCurrentDetails(
      [
        `**GPU host ${host}** — ${v.restoreFailure ? 'canaries stopped: a restore failed (healctl ack)' : v.paused ? 'paused' : v.lease ? `canary running (${v.lease.kind})` : 'idle'}`,
        [
          `- Downtime budget: ${formatDuration(v.budgetLeftMs)} left of ${formatDuration(v.budgetTotalMs)}` +
            (v.overrunMs > 0 ? `, overrun ${formatDuration(v.overrunMs)}` : ''),
          `- Cooldown: ${v.cooldownLeftMs > 0 ? `${formatDuration(v.cooldownLeftMs)} left` : 'over'}`,
          `- Paused: ${v.paused ? `by ${v.paused.by}: ${v.paused.reason}` : 'no'}`,
          `- Restore failure: ${v.restoreFailure ? `${v.restoreFailure.kind} at ${v.restoreFailure.at}: ${v.restoreFailure.message}` : 'none'}`,
        ].join('\n'),
        last ? `**Last decision:** ${last.action} — ${last.reason}` : '',
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

  setHandler(requestLeaseSignal, (request) => {
    messagesThisRun++;
    requests.push(request);
  });
  setHandler(releaseLeaseSignal, (release) => {
    messagesThisRun++;
    releases.push(release);
  });
  setHandler(hostStateQuery, view);
  setHandler(
    pauseHostUpdate,
    (action: OperatorAction) => {
      ledger = { ...ledger, paused: { at: Date.now(), by: action.by, reason: action.reason } };
      decide('operator', true, 'host paused', action.reason, action.by);
      return view();
    },
    { validator: validateOperatorAction },
  );
  setHandler(
    resumeHostUpdate,
    (action: OperatorAction) => {
      const was = ledger.paused;
      ledger = { ...ledger, paused: null };
      decide(
        'operator',
        was !== null,
        'host resumed',
        was ? action.reason : 'host was not paused',
        action.by,
      );
      return view();
    },
    { validator: validateOperatorAction },
  );
  setHandler(
    acknowledgeRestoreFailureUpdate,
    (action: OperatorAction) => {
      const was = ledger.restoreFailure;
      ledger = { ...ledger, restoreFailure: null };
      decide(
        'operator',
        was !== null,
        'restore failure acknowledged',
        was
          ? `${action.reason} (failure was: ${was.kind}: ${was.message})`
          : 'no restore failure was latched',
        action.by,
      );
      return view();
    },
    { validator: validateOperatorAction },
  );

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
      decide(
        'lease',
        false,
        'release ignored',
        `lease ${release.leaseId} is not the one held (already released or expired)`,
      );
      return;
    }
    const before = ledger.ledger;
    ledger = applyRelease(ledger, release, activePolicy, now);
    counters.overrunMs += overrunAddedMs(before, ledger.ledger);
    const left = Math.max(0, budgetTotalMs(activePolicy) - ledger.ledger.spentMs);
    decide(
      'budget',
      true,
      `lease released (${release.outcome})`,
      `${lease.kind}: downtime ${formatDuration(release.downtimeMs)} charged, budget ${formatDuration(left)} left` +
        (ledger.ledger.overrunMs > 0 ? `, overrun ${formatDuration(ledger.ledger.overrunMs)}` : '') +
        (ledger.cooldownUntil !== null ? `; cooldown ${formatDuration(ledger.cooldownUntil - now)}` : ''),
    );
    if (release.outcome === 'restore_failed') {
      decide(
        'restore',
        false,
        'canaries stopped',
        `restore failed on ${lease.kind}: ${release.restoreFailure ?? 'unknown'}; acknowledge with healctl ack ${host}`,
      );
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
      decide('budget', false, 'budget report failed', `the host could not record the budget: ${String(err)}`);
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
    const verdict = decideLease(ledger, request, activePolicy, activeWindow, now, uuid4());
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
        reason: `granted: predicted ${formatDuration(request.predictedDowntimeMs)} fits budget ${formatDuration(verdict.lease.budgetLeftMs)} left`,
        ...figures,
      };
      decide('lease', true, `lease granted to ${request.kind}`, decision.reason);
    } else {
      bump(counters.leaseRefusals, verdict.code);
      decision = {
        requestId: request.requestId,
        granted: false,
        reason: verdict.reason,
        retryAt: verdict.retryAt,
        ...figures,
      };
      decide('lease', false, `lease refused to ${request.kind}`, verdict.reason);
    }
    answered.set(request.requestId, decision);
    while (answered.size > ANSWERED_CAP) answered.delete(answered.keys().next().value as string);
    const delivered = await answer(request, decision);
    if (!delivered && verdict.granted && ledger.lease?.leaseId === verdict.lease.leaseId) {
      ledger = { ...ledger, lease: null };
      decide('lease', false, 'lease withdrawn', `${request.holderWorkflowId} could not be reached`);
    }
  };

  for (;;) {
    publish();
    const lease = ledger.lease;
    const timeout = lease ? Math.max(1, lease.expiresAt - Date.now()) : undefined;
    const woken = () => requests.length > 0 || releases.length > 0 || shouldContinueAsNew();
    if (timeout === undefined) await condition(woken);
    else await condition(woken, timeout);

    while (releases.length > 0) await handleRelease(releases.shift() as LeaseRelease);
    if (leaseExpired(ledger.lease, Date.now())) {
      const expired = ledger.lease!;
      const before = ledger.ledger;
      // The holder vanished or hung: charge what it was allowed to spend, and start the cooldown,
      // since a canary may well have restarted the service.
      ledger = applyRelease(
        ledger,
        { leaseId: expired.leaseId, downtimeMs: expired.predictedDowntimeMs, outcome: 'restored' },
        activePolicy,
        Date.now(),
      );
      counters.overrunMs += overrunAddedMs(before, ledger.ledger);
      decide(
        'lease',
        false,
        'lease expired',
        `${expired.kind} held the lease past ${formatDuration(activePolicy.leaseTtlSeconds * 1000)}; predicted downtime charged`,
      );
    }
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
