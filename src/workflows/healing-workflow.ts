// HealingWorkflow(host, kind): the durable state machine of one symptom kind on one GPU host. It counts
// symptoms over a rolling 24 h window, arms the escalation flag at the threshold, keeps a predictive
// recommendation up to date without downtime, and, while armed, sleeps until the maintenance window,
// asks the host coordinator for the canary lease and runs one canary: promote, or restore — always.
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { CandidateConfig, HostActivities, Recommendation, VramSnapshot } from '../activities/types.js';
import { VRAM_UNAVAILABLE } from '../domain/failure-types.js';
import type { DecisionEvent, RefusedMessage } from '../domain/decision-codes.js';
import { appendDecision, decisionOf } from '../domain/decision-log.js';
import { formatDuration } from '../domain/duration-text.js';
import {
  type EscalationRules,
  adviceOf,
  canaryWanted as isCanaryWanted,
  carriedState,
  clearEscalation,
  countSymptom,
  flagExpiresAt as flagExpiry,
  forceEscalation,
  lapseIfExpired,
  modeOf,
  noteOffered,
  stateFromCarried,
} from '../domain/healing-escalation.js';
import {
  type RunningCanary,
  canaryFailed,
  canaryPromoted,
  canaryRestored,
  canaryStarted,
  restoreFailed,
} from '../domain/healing-canary.js';
import { type HealingStep, planAfterAttempt, planNext } from '../domain/healing-plan.js';
import type { LeaseRelease } from '../domain/host-ledger.js';
import { hostCoordinatorWorkflowId } from '../domain/identifiers.js';
import {
  type WindowOccurrence,
  currentWindow,
  parseMaintenanceWindow,
} from '../domain/maintenance-window.js';
import type { CanaryMode, HealingPolicy } from '../domain/policy.js';
import {
  MAX_FUTURE_SKEW_MS,
  type Symptom,
  type SymptomInput,
  eventTimeMs,
  parseSymptom,
} from '../domain/symptom.js';
import { SymptomWindow } from '../domain/symptom-window.js';
import { type HealingRefusalCode, bump } from '../domain/workflow-counters.js';
import { RESTORE_ACTIVITY_OPTIONS } from './activity-options.js';
import { describeFailure } from './failure-text.js';
import { guardSignal, guardUpdate } from './handler-guard.js';
import {
  type HealingPhase,
  type HealingStateView,
  type HealingWorkflowInput,
  type LeaseDecision,
  type OperatorAction,
  type RecordSymptomResult,
  clearEscalationUpdate,
  forceEscalationUpdate,
  leaseDecisionSignal,
  recordSymptomUpdate,
  stateQuery,
  symptomSignal,
} from './healing-messages.js';
import { type HealingViewContext, healingDetails, healingStateView } from './healing-view.js';
import { releaseLeaseSignal } from './host-coordinator-messages.js';
import { check, leaseDecisionSchema } from './message-schemas.js';
import { validateOperatorAction } from './operator-action.js';
import { undecodableReason } from './payload-converter.js';
import { readHealingInput } from './workflow-input.js';
import { ARMED_ATTRIBUTE, HOST_ATTRIBUTE, KIND_ATTRIBUTE, MODE_ATTRIBUTE } from './search-attributes.js';

const { loadHealingPolicy } = proxyLocalActivities<HostActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumInterval: '30 seconds' },
});

// Measuring and predicting cost no downtime: retry briefly, but not where the host has no GPU at all.
const { measureVram, predictCandidates } = proxyActivities<HostActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumAttempts: 3, nonRetryableErrorTypes: [VRAM_UNAVAILABLE] },
});

const { requestCanaryLease } = proxyActivities<HostActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 10 },
});

const { restoreService } = proxyActivities<HostActivities>(RESTORE_ACTIVITY_OPTIONS);

/** The canary is not idempotent: never retried; a failure of any kind leads to the restore. */
function canaryActivity(healthDeadlineMs: number, soakMs: number) {
  return proxyActivities<HostActivities>({
    startToCloseTimeout: healthDeadlineMs + soakMs + 2 * 60_000,
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: 1 },
    // The restore must not start while the canary still touches the service.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  }).runCanary;
}

const LEASE_ANSWER_TIMEOUT_MS = 2 * 60_000;
const RETRY_AFTER_FAILED_PREDICTION_MS = 5 * 60_000;

/**
 * Patch of release 0.2 ("safe to act alone"): the kind policy, the escalation owed its window, missed
 * windows, idle count-only workflows ending. Histories written before it replay the 0.1 behaviour.
 */
const SAFE_RULES_PATCH = 'safe-to-act-alone';

export async function HealingWorkflow(input: HealingWorkflowInput): Promise<void> {
  const workflowId = workflowInfo().workflowId;
  const reading = readHealingInput(input, workflowId);
  if (!reading.ok) throw ApplicationFailure.nonRetryable(reading.error, 'InvalidWorkflowInput');
  const { host, kind, carried } = reading.value;
  const state = stateFromCarried(carried, new SymptomWindow(carried?.window));
  /** True once the 0.2 rules apply to this run (always for runs a 0.2 worker starts; see SAFE_RULES_PATCH). */
  let safeRules = false;
  /** The run's rules, once the host policy is loaded (handlers wait for it). */
  let rules: EscalationRules | undefined;
  /** Called from workflow code only (never from a query or a validator: patched() may record a marker). */
  const refreshRules = () => {
    safeRules ||= patched(SAFE_RULES_PATCH);
    if (rules) rules.safeRules = safeRules;
  };

  let phase: HealingPhase = 'starting';
  let next = 'loading the host policy';
  /** Set by handlers when the main loop must look again (armed, operator action, lease answer). */
  let wake = false;
  const leaseAnswers = new Map<string, LeaseDecision>();
  let awaitedRequestId: string | null = null;
  let publishedAttributes = '';
  /** Signals and updates handled by this run: a bound on history that holds even where the server reports no length. */
  let messagesThisRun = 0;

  const decide = (event: DecisionEvent, by?: string) => {
    appendDecision(state.decisions, decisionOf(event, Date.now(), by));
  };
  for (const note of reading.notes) decide({ code: 'start_input_refused', params: { note } });

  /** A canary held back by this workflow: recorded with its reason, and counted for the metrics. */
  const refuse = (code: HealingRefusalCode, event: DecisionEvent) => {
    bump(state.counters.refused, code);
    decide(event);
  };

  // ---- escalation: transitions of healing-escalation.ts over `state` ----------------------------

  const loaded = () => rules !== undefined;
  const advice = () => (rules ? adviceOf(state, rules) : null);
  const flagExpiresAt = () => (rules ? flagExpiry(state, rules) : null);
  const mode = (): CanaryMode => (rules ? modeOf(state, rules) : 'predictive');
  const canaryWanted = (now: number) => (rules ? isCanaryWanted(state, rules, now) : false);

  // ---- symptoms --------------------------------------------------------------------------------

  /** Why this payload cannot be counted, or null; the same checks for the signal and the update. */
  const rejection = (payload: unknown): string | null => {
    const undecodable = undecodableReason(payload);
    if (undecodable !== null) return `payload: ${undecodable}`;
    const parsed = parseSymptom(payload);
    if (!parsed.ok) return parsed.error;
    if (parsed.symptom.kind !== kind) {
      return `kind: this workflow heals "${kind}" on ${host}; send "${parsed.symptom.kind}" to the workflow of that kind`;
    }
    const at = eventTimeMs(parsed.symptom, Date.now());
    if (at > Date.now() + MAX_FUTURE_SKEW_MS) {
      return `eventTime: ${new Date(at).toISOString()} is more than ${formatDuration(MAX_FUTURE_SKEW_MS)} in the future; check the sender's clock`;
    }
    return null;
  };

  const accept = (active: EscalationRules, symptom: Symptom): RecordSymptomResult => {
    const now = Date.now();
    const counted = countSymptom(state, active, symptom, now);
    if (counted.wake) wake = true;
    publish();
    const expiresAt = flagExpiresAt();
    return {
      outcome: counted.outcome,
      count24h: state.symptoms.count(now),
      threshold: active.policy.threshold24h,
      armed: state.armedAt !== null,
      flagExpiresAt: expiresAt === null ? null : iso(expiresAt),
      mode: mode(),
    };
  };

  /** A message refused by a guard: recorded (and counted as a rejected symptom when it was one). */
  const refuseMessage = (what: RefusedMessage) => (problem: string) => {
    if (what === 'symptom') state.totals.rejected++;
    decide({ code: 'message_rejected', params: { message: what, problem } });
  };

  /** The rules, once loaded: handlers that act wait for them. */
  const activeRules = async (): Promise<EscalationRules> => {
    await condition(loaded);
    if (rules === undefined) throw new Error('unreachable: the rules are loaded');
    return rules;
  };

  setHandler(
    symptomSignal,
    guardSignal(async (payload: SymptomInput) => {
      messagesThisRun++;
      refreshRules();
      // A signal cannot be answered: a bad payload is recorded, never thrown (that would fail the task).
      const problem = rejection(payload);
      if (problem !== null) {
        refuseMessage('symptom')(problem);
        return;
      }
      const active = await activeRules();
      const parsed = parseSymptom(payload);
      if (parsed.ok) accept(active, parsed.symptom);
    }, refuseMessage('symptom')),
  );

  setHandler(
    recordSymptomUpdate,
    guardUpdate(
      'recordSymptom',
      async (payload: SymptomInput) => {
        messagesThisRun++;
        refreshRules();
        const active = await activeRules();
        const parsed = parseSymptom(payload);
        if (!parsed.ok) throw new TypeError(parsed.error); // unreachable: the validator ran first
        return accept(active, parsed.symptom);
      },
      refuseMessage('symptom'),
    ),
    {
      validator: (payload: SymptomInput) => {
        const problem = rejection(payload);
        if (problem !== null) throw new TypeError(problem);
      },
    },
  );

  // ---- operator actions ------------------------------------------------------------------------

  setHandler(
    clearEscalationUpdate,
    guardUpdate(
      'clearEscalation',
      async (request: OperatorAction) => {
        refreshRules();
        await activeRules();
        clearEscalation(state, request, Date.now());
        wake = true;
        publish();
        return view();
      },
      refuseMessage('clearEscalation'),
    ),
    { validator: validateOperatorAction },
  );

  setHandler(
    forceEscalationUpdate,
    guardUpdate(
      'forceEscalation',
      async (request: OperatorAction) => {
        refreshRules();
        const refusal = forceEscalation(state, await activeRules(), request, Date.now());
        if (refusal !== null) throw ApplicationFailure.nonRetryable(refusal, 'KindCannotAct');
        wake = true;
        publish();
        return view();
      },
      refuseMessage('forceEscalation'),
    ),
    { validator: validateOperatorAction },
  );

  // ---- lease answers from the host coordinator --------------------------------------------------

  /** Requests this run stopped waiting for: only a late grant of one of them is handed back. */
  const abandonedRequests: string[] = [];

  setHandler(
    leaseDecisionSignal,
    guardSignal(async (payload: LeaseDecision) => {
      refreshRules();
      const checked = check(leaseDecisionSchema, payload);
      if (!checked.ok) {
        decide({ code: 'lease_answer_rejected', params: { problem: checked.error } });
        return;
      }
      const decision = checked.value;
      state.hostFigures = {
        budgetLeftMs: decision.budgetLeftMs,
        budgetTotalMs: decision.budgetTotalMs,
        cooldownUntil: decision.cooldownUntil,
        asOf: Date.now(),
      };
      if (decision.requestId === awaitedRequestId) {
        leaseAnswers.set(decision.requestId, decision);
        return;
      }
      // An answer that comes after we stopped waiting: a grant nobody will use is handed straight back —
      // but only for a request of ours, so that a forged answer cannot release another holder's lease.
      const ours = !safeRules || abandonedRequests.includes(decision.requestId);
      if (decision.granted && decision.leaseId && ours) {
        decide({ code: 'late_lease_returned', params: { requestId: decision.requestId } });
        await releaseLease({ leaseId: decision.leaseId, downtimeMs: 0, outcome: 'not_started' });
      }
    }, refuseMessage('leaseDecision')),
  );

  setHandler(stateQuery, () => view());

  // ---- views for people: query, Web UI details, search attributes -------------------------------

  const viewContext = (): HealingViewContext => ({
    workflowId,
    firstRunId: workflowInfo().firstExecutionRunId,
    host,
    kind,
    now: Date.now(),
    phase,
    next,
    rules,
  });
  const view = (): HealingStateView => healingStateView(state, viewContext());

  /** Search attributes (only when they change) and the Web UI's current-details text. */
  const publish = () => {
    const armed = state.armedAt !== null;
    const key = `${mode()}|${String(armed)}`;
    if (key !== publishedAttributes) {
      publishedAttributes = key;
      upsertSearchAttributes([
        { key: HOST_ATTRIBUTE, value: host },
        { key: KIND_ATTRIBUTE, value: kind },
        { key: MODE_ATTRIBUTE, value: mode() },
        { key: ARMED_ATTRIBUTE, value: armed },
      ]);
    }
    setCurrentDetails(healingDetails(state, viewContext()));
  };

  const setPhase = (p: HealingPhase, sentence: string) => {
    phase = p;
    next = sentence;
    publish();
  };

  // ---- predictive mode -------------------------------------------------------------------------

  /** Measure VRAM and rank candidate configs: no downtime, so it runs on new symptoms in any mode. */
  const predict = async (why: string): Promise<Recommendation | null> => {
    state.lastPredictedAt = Date.now();
    state.symptomsSincePrediction = false;
    let vram: VramSnapshot | null = null;
    try {
      vram = await measureVram();
    } catch (err) {
      decide({ code: 'vram_not_measured', params: { failure: describeFailure(err) } });
    }
    try {
      const rec = await predictCandidates({ host, kind, vram, symptom: state.lastSymptomDetails ?? null });
      state.recommendation = rec;
      const best = rec.candidates.find((c) => c.fits);
      decide({
        code: 'recommendation_updated',
        params: { why, best: best ? { id: best.id, why: best.why } : null, basis: rec.basis },
      });
      return rec;
    } catch (err) {
      decide({ code: 'no_recommendation', params: { failure: describeFailure(err) } });
      return null;
    }
  };

  // ---- the canary --------------------------------------------------------------------------------

  const releaseLease = async (release: LeaseRelease) => {
    await CancellationScope.nonCancellable(async () => {
      try {
        await getExternalWorkflowHandle(hostCoordinatorWorkflowId(host)).signal(releaseLeaseSignal, release);
      } catch (err) {
        decide({ code: 'lease_not_released', params: { failure: describeFailure(err) } });
      }
    });
  };

  /** Ask the coordinator; returns its answer, or null when it did not answer in time. */
  const requestLease = async (candidate: CandidateConfig): Promise<LeaseDecision | null> => {
    const requestId = uuid4();
    awaitedRequestId = requestId;
    try {
      await requestCanaryLease({
        host,
        requestId,
        holderWorkflowId: workflowId,
        kind,
        predictedDowntimeMs: candidate.predictedDowntimeMs,
      });
      await condition(() => leaseAnswers.has(requestId), LEASE_ANSWER_TIMEOUT_MS);
      return leaseAnswers.get(requestId) ?? null;
    } finally {
      awaitedRequestId = null;
      if (!leaseAnswers.has(requestId)) {
        abandonedRequests.push(requestId);
        if (abandonedRequests.length > 20) abandonedRequests.shift();
      }
      leaseAnswers.delete(requestId);
    }
  };

  /** Run the canary under a granted lease: promote, or restore whatever happened, then release. */
  const runLeasedCanary = async (
    activePolicy: HealingPolicy,
    candidate: CandidateConfig,
    lease: LeaseDecision & { leaseId: string },
  ) => {
    const soakMs = activePolicy.soakSeconds * 1000;
    const run: RunningCanary = {
      candidate,
      leaseId: lease.leaseId,
      startedAt: Date.now(),
      mode: mode(),
      result: null,
    };
    canaryStarted(state, run, lease.budgetLeftMs, run.startedAt);
    setPhase(
      'canary_running',
      `canary ${candidate.id} running (attempt ${state.attempts} of ${activePolicy.maxAttempts}, health deadline ${formatDuration(lease.budgetLeftMs)})`,
    );

    let failure: string | null = null;
    let cancellation: Error | null = null;
    try {
      run.result = await canaryActivity(
        lease.budgetLeftMs,
        soakMs,
      )({ host, kind, leaseId: lease.leaseId, candidate, healthDeadlineMs: lease.budgetLeftMs, soakMs });
    } catch (err) {
      if (isCancellation(err)) cancellation = err as Error;
      failure = isCancellation(err) ? 'workflow cancelled during the canary' : describeFailure(err);
    }

    if (run.result?.outcome === 'passed' && cancellation === null) {
      await releaseLease(canaryPromoted(state, run, run.result, Date.now()));
      return;
    }
    // The old config goes back, always, and nothing may cancel that.
    await CancellationScope.nonCancellable(() => restoreAfter(run, failure, cancellation !== null));
    if (cancellation !== null) throw cancellation;
  };

  /** Restore the previous config after a canary that did not pass, then release the lease. */
  const restoreAfter = async (run: RunningCanary, failure: string | null, cancelled: boolean) => {
    const failed = canaryFailed(state, run, failure, Date.now());
    setPhase('restoring', `restoring the previous config after: ${failed.reason}`);
    const restoreStarted = Date.now();
    let release: LeaseRelease;
    try {
      const restored = await restoreService({ host, kind, leaseId: run.leaseId, reason: failed.reason });
      release = canaryRestored(state, run, failed, restored.downtimeMs, cancelled, Date.now());
    } catch (err) {
      const now = Date.now();
      release = restoreFailed(state, run, failed, describeFailure(err), now - restoreStarted, host, now);
    }
    await releaseLease(release);
  };

  /**
   * The window is open: re-check everything with fresh measurements, then ask for the lease.
   * Returns when to look again within this window, or null to wait for the next window.
   */
  const attemptCanary = async (
    activePolicy: HealingPolicy,
    occurrence: WindowOccurrence,
  ): Promise<number | null> => {
    setPhase(
      'requesting_lease',
      'window open: measuring, predicting and asking the host for the canary lease',
    );
    const rec = await predict('maintenance window open');
    if (rec === null) {
      bump(state.counters.refused, 'prediction_failed' satisfies HealingRefusalCode);
      return Math.min(Date.now() + RETRY_AFTER_FAILED_PREDICTION_MS, occurrence.closesAt);
    }
    const candidate = rec.candidates.find((c) => c.fits);
    if (!candidate) {
      refuse('no_fitting_candidate', {
        code: 'canary_refused_no_fit',
        params: { considered: rec.candidates.length },
      });
      return null;
    }
    const windowLeft = occurrence.closesAt - Date.now();
    if (windowLeft < candidate.predictedDowntimeMs) {
      refuse('window_closing', {
        code: 'canary_refused_window_closing',
        params: { windowLeftMs: windowLeft, predictedDowntimeMs: candidate.predictedDowntimeMs },
      });
      return null;
    }
    if (state.attempts >= activePolicy.maxAttempts) return null;
    const answer = await requestLease(candidate);
    if (answer === null) {
      refuse('lease_unanswered', {
        code: 'lease_unanswered',
        params: { waitedMs: LEASE_ANSWER_TIMEOUT_MS },
      });
      return Math.min(Date.now() + 60_000, occurrence.closesAt);
    }
    if (!answer.granted || !answer.leaseId) {
      decide({
        code: 'canary_refused_by_host',
        params: { reason: answer.reason, refusal: answer.refusal ?? null },
      });
      return answer.retryAt ?? null;
    }
    // Everything may have changed while we waited for the answer (an operator cleared the flag).
    if (!canaryWanted(Date.now())) {
      refuse('escalation_gone', { code: 'canary_dropped', params: {} });
      await releaseLease({ leaseId: answer.leaseId, downtimeMs: 0, outcome: 'not_started' });
      return null;
    }
    await runLeasedCanary(activePolicy, candidate, { ...answer, leaseId: answer.leaseId });
    return null;
  };

  // ---- main loop -------------------------------------------------------------------------------

  const policy = await loadHealingPolicy();
  const activeWindow = parseMaintenanceWindow(policy.maintenanceWindow, policy.maintenanceTimeZone);
  const active: EscalationRules = { kind, policy, window: activeWindow, safeRules };
  rules = active;
  const limit = policy.historyEventsLimit;
  // Each message costs up to 4 events (received, task scheduled, started, completed): the estimate
  // errs towards continuing early, which is harmless.
  const shouldContinueAsNew = () =>
    workflowInfo().continueAsNewSuggested ||
    workflowInfo().historyLength >= limit ||
    messagesThisRun * 4 >= limit;
  let announcedOpening: number | null = null;

  /** Sleep durably until `until` (or forever), waking early for anything the handlers flag. */
  const waitUntil = async (until: number | null) => {
    wake = false;
    publish();
    const woken = () => wake || shouldContinueAsNew();
    if (until === null) await condition(woken);
    else await condition(woken, Math.max(1, until - Date.now()));
  };

  /** Run a wait step: its announcement (once per window opening), its phase, the sleep. */
  const runWait = async (step: Extract<HealingStep, { type: 'wait' }>) => {
    if (step.announce) {
      announcedOpening = step.announce.opensAt;
      decide(step.announce.decision);
    }
    setPhase(step.phase, step.next);
    await waitUntil(step.until);
  };

  for (;;) {
    refreshRules();
    const now = Date.now();
    lapseIfExpired(state, active, now);
    noteOffered(state, active, currentWindow(activeWindow, now));

    if (shouldContinueAsNew()) {
      await condition(allHandlersFinished);
      decide({
        code: 'continued_as_new',
        params: {
          historyLength: workflowInfo().historyLength,
          messages: messagesThisRun,
          nextRun: state.runs + 1,
        },
      });
      await continueAsNew<typeof HealingWorkflow>({
        host,
        kind,
        carried: carriedState(state, safeRules),
      });
    }

    const step = planNext(state, active, now, {
      phase,
      runStartedAt: workflowInfo().runStartTime.getTime(),
      announcedOpening,
    });
    switch (step.type) {
      case 'predict':
        setPhase(step.phase, step.next);
        await predict('new symptom');
        break;
      case 'wait':
        await runWait(step);
        break;
      case 'end':
        await condition(allHandlersFinished);
        if (state.symptoms.count(Date.now()) === 0) {
          decide({ code: 'workflow_ended', params: { kind, advice: advice() ?? '' } });
          setPhase('watching', 'ended: it starts again with the next symptom of this kind');
          return;
        }
        break;
      case 'attempt': {
        const retryAt = await attemptCanary(policy, step.occurrence);
        const after = planAfterAttempt(state, active, retryAt, Date.now());
        if (after?.type === 'wait') await runWait(after);
        break;
      }
    }
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
