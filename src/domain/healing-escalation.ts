// The escalation side of HealingWorkflow as transitions over its one state object: symptoms counted, the
// flag armed at the threshold or by an operator, lapsed after its TTL (never before the window it is
// owed), windows offered and missed, and what the kind may do at all. No Temporal imports and no clock:
// each transition gets `now`, changes the state it is given (the workflow owns it) and records its
// decisions in it; it returns what the workflow must know (whether to wake, the symptom's outcome).
import { appendDecision, decisionOf, hasCode } from './decision-log.js';
import type { DecisionEvent } from './decision-codes.js';
import { flagExpiresAt as flagExpiry } from './escalation.js';
import { hardwareAdvice } from './hardware-advice.js';
import type { CarriedHealingState, OfferedWindow, OperatorAction } from './healing-state.js';
import { type KindAction, kindAction } from './kind-policy.js';
import type { MaintenanceWindow, WindowOccurrence } from './maintenance-window.js';
import { type CanaryMode, type HealingPolicy, kindActionsOf } from './policy.js';
import { type Symptom, eventTimeMs } from './symptom.js';
import type { AddOutcome, SymptomWindow } from './symptom-window.js';
import { emptyHealingCounters } from './workflow-counters.js';

/** The state of one (host, kind) during a run: what is carried, with the symptom window live. */
export type EscalationState = Omit<CarriedHealingState, 'window' | 'counters' | 'offered'> & {
  symptoms: SymptomWindow;
  counters: NonNullable<CarriedHealingState['counters']>;
  offered: OfferedWindow | null;
  /** A symptom was counted since the last prediction. */
  symptomsSincePrediction: boolean;
};

/** What a run decides by: its kind, the host's policy and window, and which release's rules apply. */
export interface EscalationRules {
  kind: string;
  policy: HealingPolicy;
  window: MaintenanceWindow;
  /** The 0.2 rules (kind policy, owed windows, missed windows); false while replaying 0.1 histories. */
  safeRules: boolean;
}

/** Record a decision in the state's log. */
export function record(state: EscalationState, event: DecisionEvent, now: number, by?: string): void {
  appendDecision(state.decisions, decisionOf(event, now, by));
}

/** What this kind may do (heal, alert, count); before the 0.2 rules every kind healed. */
export function actionOf(rules: EscalationRules): KindAction {
  return rules.safeRules ? kindAction(rules.kind, kindActionsOf(rules.policy)) : 'heal';
}

/** For kinds that do not heal, what an operator should do instead; null for kinds that heal. */
export function adviceOf(state: EscalationState, rules: EscalationRules): string | null {
  const action = actionOf(rules);
  if (action === 'heal') return null;
  if (action === 'alert') return hardwareAdvice(rules.kind, state.lastSymptomDetails?.text);
  return `kind "${rules.kind}" only counts: it is not a built-in kind and KLR_KIND_ACTIONS does not name it, so it never arms or acts (KLR_KIND_ACTIONS=${rules.kind}=alert or =heal lets it)`;
}

/** When the armed flag lapses; under the 0.2 rules a healable escalation keeps its owed window. */
export function flagExpiresAt(state: EscalationState, rules: EscalationRules): number | null {
  return flagExpiry(
    {
      armedAt: state.armedAt,
      lastSymptomAt: state.lastSymptomAt,
      forcedAt: state.forced?.at ?? null,
      ttlSeconds: rules.policy.escalationFlagTtlSeconds,
    },
    rules.safeRules && actionOf(rules) === 'heal' ? rules.window : null,
  );
}

export function modeOf(state: EscalationState, rules: EscalationRules): CanaryMode {
  if (actionOf(rules) !== 'heal') return 'predictive';
  return state.armedAt !== null ? 'canary' : rules.policy.defaultMode;
}

/** Armed, or canary mode by default with something to heal; never for a kind that does not heal. */
export function canaryWanted(state: EscalationState, rules: EscalationRules, now: number): boolean {
  return (
    actionOf(rules) === 'heal' &&
    (state.armedAt !== null || (modeOf(state, rules) === 'canary' && state.symptoms.count(now) > 0))
  );
}

/** When the next prediction is due (new symptoms since the last one), or null. */
export function predictionDueAt(state: EscalationState, rules: EscalationRules, now: number): number | null {
  if (!state.symptomsSincePrediction || actionOf(rules) !== 'heal') return null;
  return state.lastPredictedAt === null
    ? now
    : state.lastPredictedAt + rules.policy.predictIntervalSeconds * 1000;
}

export function disarm(state: EscalationState): void {
  state.armedAt = null;
  state.forced = null;
  state.attempts = 0;
  state.offered = null;
}

/**
 * An armed escalation was offered a whole window (it was armed when the window opened) and the window
 * closed without a canary: counted and recorded, so the missed-window alert fires.
 */
export function noteMissedWindow(state: EscalationState, rules: EscalationRules, now: number): void {
  const missed = state.offered;
  if (missed === null || now < missed.closesAt) return;
  state.offered = null;
  if (missed.canaryRan || state.armedAt === null) return;
  state.counters.missedWindows = (state.counters.missedWindows ?? 0) + 1;
  const refusals = state.decisions.filter((d) => !d.taken && d.at >= missed.opensAt && d.topic !== 'symptom');
  const last = refusals[refusals.length - 1];
  const tz = rules.policy.maintenanceTimeZone;
  record(
    state,
    {
      code: 'window_missed',
      params: {
        opensAt: missed.opensAt,
        closesAt: missed.closesAt,
        tz,
        lastRefusal: last ? `${last.action} (${last.reason})` : null,
        lastRefusalCode: last ? last.code : null,
        lastHostRefusal:
          last !== undefined && hasCode(last, 'canary_refused_by_host') ? last.params.refusal : null,
      },
    },
    now,
  );
}

/**
 * Remember the open window as offered to an armed, healable escalation (once per occurrence) — a whole
 * window only: one that opened after the escalation was armed (one armed halfway through is tried at
 * once, but missing it is not missing a window).
 */
export function noteOffered(
  state: EscalationState,
  rules: EscalationRules,
  open: WindowOccurrence | null,
): void {
  if (!rules.safeRules || actionOf(rules) !== 'heal') return;
  if (state.armedAt === null || open === null || open.opensAt < state.armedAt) return;
  if (state.offered?.opensAt !== open.opensAt) state.offered = { ...open, canaryRan: false };
}

/**
 * Arm when a counted symptom brings the count to the threshold — only then: a lapsed escalation stays
 * lapsed while old symptoms are still in the window, until a new one arrives. True when it armed.
 */
export function armAtThreshold(state: EscalationState, rules: EscalationRules, now: number): boolean {
  const count = state.symptoms.count(now);
  const threshold = rules.policy.threshold24h;
  if (state.armedAt !== null || count < threshold) return false;
  const action = actionOf(rules);
  if (action === 'count') {
    // Said once per time the count reaches the threshold, not on every symptom above it.
    if (count === threshold) {
      record(
        state,
        { code: 'escalation_not_armed', params: { count, advice: adviceOf(state, rules) ?? '' } },
        now,
      );
    }
    return false;
  }
  state.armedAt = now;
  record(
    state,
    {
      code: 'escalation_armed',
      params: { count, threshold, alertOnly: action === 'alert' ? adviceOf(state, rules) : null },
    },
    now,
  );
  return true;
}

/** Disarm once the TTL has passed since the last symptom (or force), with the reason. */
export function lapseIfExpired(state: EscalationState, rules: EscalationRules, now: number): void {
  noteMissedWindow(state, rules, now);
  const expiresAt = flagExpiresAt(state, rules);
  if (state.armedAt === null || expiresAt === null || expiresAt > now) return;
  disarm(state);
  record(
    state,
    {
      code: 'escalation_lapsed',
      params: {
        lastSymptomAt: state.lastSymptomAt,
        tz: rules.policy.maintenanceTimeZone,
        ttlMs: rules.policy.escalationFlagTtlSeconds * 1000,
      },
    },
    now,
  );
}

/** A valid symptom of this kind: counted once by event time, then the flag is looked at. */
export function countSymptom(
  state: EscalationState,
  rules: EscalationRules,
  symptom: Symptom,
  now: number,
): { outcome: AddOutcome; wake: boolean } {
  const at = eventTimeMs(symptom, now);
  const outcome = state.symptoms.add(at, symptom.id, now);
  let wake = false;
  if (outcome === 'counted') {
    state.totals.counted++;
    state.lastSymptomAt = Math.max(state.lastSymptomAt ?? at, at);
    state.lastSymptomDetails = symptom.details ?? null;
    state.symptomsSincePrediction = true;
    const due = predictionDueAt(state, rules, now);
    if (due !== null && due <= now) wake = true;
  } else if (outcome === 'duplicate') {
    state.totals.duplicates++;
  } else {
    state.totals.stale++;
    record(state, { code: 'symptom_stale', params: { eventTime: at } }, now);
  }
  if (outcome === 'counted' && armAtThreshold(state, rules, now)) wake = true;
  lapseIfExpired(state, rules, now);
  return { outcome, wake };
}

/** Operator: disarm and forget the counted symptoms. */
export function clearEscalation(state: EscalationState, request: OperatorAction, now: number): void {
  const wasArmed = state.armedAt !== null;
  const forgotten = state.symptoms.count(now);
  disarm(state);
  state.symptoms.clearCounts();
  record(
    state,
    { code: 'escalation_cleared', params: { reason: request.reason, wasArmed, forgotten } },
    now,
    request.by,
  );
}

/**
 * Operator: arm now, whatever the count, with a fresh attempt cap. Returns the refusal for a kind that
 * only counts (it never arms), or null.
 */
export function forceEscalation(
  state: EscalationState,
  rules: EscalationRules,
  request: OperatorAction,
  now: number,
): string | null {
  const action = actionOf(rules);
  if (action === 'count') return `forceEscalation refused: ${adviceOf(state, rules)}`;
  state.forced = { by: request.by, reason: request.reason, at: now };
  if (state.armedAt === null) state.armedAt = now;
  state.attempts = 0;
  record(
    state,
    {
      code: 'escalation_forced',
      params: { reason: request.reason, alertOnly: action === 'alert' ? adviceOf(state, rules) : null },
    },
    now,
    request.by,
  );
  return null;
}

/** What continue-as-new carries to the next run (`offered` only under the 0.2 rules). */
export function carriedState(state: EscalationState, safeRules: boolean): CarriedHealingState {
  return {
    window: state.symptoms.toState(),
    lastSymptomAt: state.lastSymptomAt,
    forced: state.forced,
    armedAt: state.armedAt,
    attempts: state.attempts,
    lastCanary: state.lastCanary,
    recommendation: state.recommendation,
    lastPredictedAt: state.lastPredictedAt,
    lastSymptomDetails: state.lastSymptomDetails,
    hostFigures: state.hostFigures,
    decisions: state.decisions,
    totals: state.totals,
    counters: state.counters,
    ...(safeRules ? { offered: state.offered } : {}),
    runs: state.runs,
  };
}

/** A run's state from what the previous run carried (or a fresh one). */
export function stateFromCarried(
  carried: CarriedHealingState | null,
  symptoms: SymptomWindow,
): EscalationState {
  const lastSymptomAt = carried?.lastSymptomAt ?? null;
  const lastPredictedAt = carried?.lastPredictedAt ?? null;
  return {
    symptoms,
    lastSymptomAt,
    forced: carried?.forced ?? null,
    armedAt: carried?.armedAt ?? null,
    attempts: carried?.attempts ?? 0,
    lastCanary: carried?.lastCanary ?? null,
    recommendation: carried?.recommendation ?? null,
    lastPredictedAt,
    lastSymptomDetails: carried?.lastSymptomDetails ?? null,
    hostFigures: carried?.hostFigures ?? null,
    decisions: carried?.decisions ?? [],
    totals: carried?.totals ?? { counted: 0, duplicates: 0, stale: 0, rejected: 0 },
    counters: carried?.counters ?? emptyHealingCounters(),
    offered: carried?.offered ?? null,
    runs: (carried?.runs ?? 0) + 1,
    symptomsSincePrediction:
      lastSymptomAt !== null && (lastPredictedAt === null || lastPredictedAt < lastSymptomAt),
  };
}
