// The window is open and the escalation wants a canary: whether to ask the host for the lease, and what to
// do with its answer. Pure: the workflow runs the prediction and the lease request and passes their results
// and the time; these say what follows, record the decisions and count the refusals.
import { type EscalationRules, type EscalationState, canaryWanted, record } from './healing-escalation.js';
import type { LeaseDecision } from './host-ledger.js';
import type { WindowOccurrence } from './maintenance-window.js';
import type { CandidateConfig, Recommendation } from './recommendation.js';
import { type HealingRefusalCode, bump } from './workflow-counters.js';

/** After a failed prediction, try again this much later (within the window). */
export const RETRY_AFTER_FAILED_PREDICTION_MS = 5 * 60_000;
/** After the coordinator did not answer, ask again this much later (within the window). */
export const RETRY_AFTER_UNANSWERED_LEASE_MS = 60_000;

/** What follows a try: ask for the lease with this candidate, or look again at `retryAt` (null: next window). */
export type AttemptStep =
  { type: 'ask'; candidate: CandidateConfig } | { type: 'stop'; retryAt: number | null };

/** What follows the coordinator's answer: run the canary under the lease, or stop (and maybe hand it back). */
export type LeaseStep =
  | { type: 'run'; leaseId: string; budgetLeftMs: number }
  | { type: 'stop'; retryAt: number | null; giveBack: string | null };

function refuse(
  state: EscalationState,
  code: HealingRefusalCode,
  now: number,
  event: Parameters<typeof record>[1],
) {
  bump(state.counters.refused, code);
  record(state, event, now);
}

/** With the fresh prediction (null: it failed), whether to ask for the lease. */
export function attemptStep(
  state: EscalationState,
  rules: EscalationRules,
  rec: Recommendation | null,
  occurrence: WindowOccurrence,
  now: number,
): AttemptStep {
  if (rec === null) {
    bump(state.counters.refused, 'prediction_failed' satisfies HealingRefusalCode);
    return { type: 'stop', retryAt: Math.min(now + RETRY_AFTER_FAILED_PREDICTION_MS, occurrence.closesAt) };
  }
  const candidate = rec.candidates.find((c) => c.fits);
  if (!candidate) {
    refuse(state, 'no_fitting_candidate', now, {
      code: 'canary_refused_no_fit',
      params: { considered: rec.candidates.length },
    });
    return { type: 'stop', retryAt: null };
  }
  const windowLeft = occurrence.closesAt - now;
  if (windowLeft < candidate.predictedDowntimeMs) {
    refuse(state, 'window_closing', now, {
      code: 'canary_refused_window_closing',
      params: { windowLeftMs: windowLeft, predictedDowntimeMs: candidate.predictedDowntimeMs },
    });
    return { type: 'stop', retryAt: null };
  }
  if (state.attempts >= rules.policy.maxAttempts) return { type: 'stop', retryAt: null };
  return { type: 'ask', candidate };
}

/** How a lease request went: the coordinator's answer, or none (after `waitedMs`, and why when it failed). */
export type LeaseAsked = { answer: LeaseDecision } | { answer: null; waitedMs: number; failure?: string };

/** With the coordinator's answer (or none), whether the canary runs. */
export function leaseStep(
  state: EscalationState,
  rules: EscalationRules,
  asked: LeaseAsked,
  occurrence: WindowOccurrence,
  now: number,
): LeaseStep {
  if (asked.answer === null) {
    const { waitedMs, failure } = asked;
    refuse(state, 'lease_unanswered', now, {
      code: 'lease_unanswered',
      params: { waitedMs, ...(failure !== undefined ? { failure } : {}) },
    });
    return {
      type: 'stop',
      retryAt: Math.min(now + RETRY_AFTER_UNANSWERED_LEASE_MS, occurrence.closesAt),
      giveBack: null,
    };
  }
  const answer = asked.answer;
  if (!answer.granted || !answer.leaseId) {
    record(
      state,
      { code: 'canary_refused_by_host', params: { reason: answer.reason, refusal: answer.refusal ?? null } },
      now,
    );
    return { type: 'stop', retryAt: answer.retryAt ?? null, giveBack: null };
  }
  // Everything may have changed while we waited for the answer (an operator cleared the flag).
  if (!canaryWanted(state, rules, now)) {
    refuse(state, 'escalation_gone', now, { code: 'canary_dropped', params: {} });
    return { type: 'stop', retryAt: null, giveBack: answer.leaseId };
  }
  return { type: 'run', leaseId: answer.leaseId, budgetLeftMs: answer.budgetLeftMs };
}
