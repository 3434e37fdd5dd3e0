// What a HealingWorkflow does next, decided from its state alone: predict, wait (until when, in which
// phase, saying what), try the canary in the open window, or end. The workflow's loop runs the step and
// asks again. Pure: no Temporal imports, no clock.
import type { DecisionEvent } from './decision-codes.js';
import { formatDuration } from './duration-text.js';
import {
  type EscalationRules,
  type EscalationState,
  actionOf,
  adviceOf,
  canaryWanted,
  flagExpiresAt,
  predictionDueAt,
} from './healing-escalation.js';
import type { HealingPhase } from './healing-state.js';
import {
  type WindowOccurrence,
  currentWindow,
  describeNextWindow,
  nextOpening,
} from './maintenance-window.js';

/** A count-only kind's workflow ends after this long with nothing counted. */
export const IDLE_END_MS = 24 * 3600_000;

export type HealingStep =
  | { type: 'predict'; phase: HealingPhase; next: string }
  /** Sleep until `until` (null: until something happens), in `phase`, saying `next`. */
  | { type: 'wait'; phase: HealingPhase; next: string; until: number | null; announce?: Announcement }
  /** The window is open: measure, predict and ask for the lease. */
  | { type: 'attempt'; occurrence: WindowOccurrence }
  /** Nothing to count for 24 h (a kind that only counts): end, once the handlers have finished. */
  | { type: 'end' };

/** A decision said once per window opening: that the escalation waits for it. */
export interface Announcement {
  opensAt: number;
  decision: DecisionEvent;
}

export interface PlanContext {
  phase: HealingPhase;
  /** When this run started (a count-only kind idles from then or its last symptom). */
  runStartedAt: number;
  /** The window opening already announced as awaited (said once per opening). */
  announcedOpening: number | null;
}

const earliest = (...times: (number | null)[]): number | null =>
  times.reduce<number | null>((a, b) => (b === null ? a : a === null ? b : Math.min(a, b)), null);

/**
 * A wait also ends at the close of a window offered to the escalation (a missed window is noted when it
 * closes), and when a symptom leaves the 24 h window, so the reported count stays true.
 */
function wait(
  state: EscalationState,
  phase: HealingPhase,
  next: string,
  until: number | null,
  announce?: Announcement,
): HealingStep {
  const offeredClose = state.offered && !state.offered.canaryRan ? state.offered.closesAt : null;
  return {
    type: 'wait',
    phase,
    next,
    until: earliest(until, offeredClose),
    ...(announce ? { announce } : {}),
  };
}

/** Queries see the time of the last activation: wake when a symptom leaves the window, at most once a minute. */
function countRefreshAt(state: EscalationState, now: number): number | null {
  const expiry = state.symptoms.nextExpiry(now);
  return expiry === null ? null : Math.max(expiry, now + 60_000);
}

export function planNext(
  state: EscalationState,
  rules: EscalationRules,
  now: number,
  ctx: PlanContext,
): HealingStep {
  const { policy, window } = rules;
  const count = state.symptoms.count(now);
  const dueAt = predictionDueAt(state, rules, now);
  if (dueAt !== null && dueAt <= now) {
    return {
      type: 'predict',
      phase: ctx.phase === 'starting' ? 'watching' : ctx.phase,
      next: 'measuring VRAM and predicting candidate configs',
    };
  }
  const expiresAt = flagExpiresAt(state, rules);

  if (actionOf(rules) !== 'heal') {
    // A kind nobody described ends after 24 h without a symptom rather than run for ever (anyone may
    // invent kinds); its next symptom starts it again.
    const idleEndsAt =
      actionOf(rules) === 'count' && count === 0
        ? Math.max(state.lastSymptomAt ?? 0, ctx.runStartedAt) + IDLE_END_MS
        : null;
    if (idleEndsAt !== null && idleEndsAt <= now) return { type: 'end' };
    const armed = state.armedAt !== null ? ', escalation armed' : '';
    return wait(
      state,
      'watching',
      `${count} of ${policy.threshold24h} symptoms in 24 h${armed}; ${adviceOf(state, rules)}`,
      earliest(expiresAt, countRefreshAt(state, now), idleEndsAt),
    );
  }

  if (!canaryWanted(state, rules, now)) {
    return wait(
      state,
      'watching',
      `predictive mode: ${count} of ${policy.threshold24h} symptoms in 24 h; no canary planned`,
      earliest(dueAt, countRefreshAt(state, now)),
    );
  }

  if (state.attempts >= policy.maxAttempts) {
    return wait(
      state,
      'blocked',
      `attempt cap ${policy.maxAttempts} reached for this escalation: waiting for it to lapse or for an operator (healctl clear / escalate)`,
      earliest(expiresAt, dueAt),
    );
  }

  const open = currentWindow(window, now);
  if (open !== null) return { type: 'attempt', occurrence: open };
  const opening = nextOpening(window, now);
  const described = describeNextWindow(window, now);
  return wait(
    state,
    'waiting_for_window',
    `escalated: ${described}`,
    earliest(opening.opensAt, expiresAt, dueAt, countRefreshAt(state, now)),
    ctx.announcedOpening !== opening.opensAt
      ? { opensAt: opening.opensAt, decision: { code: 'waiting_for_window', params: { window: described } } }
      : undefined,
  );
}

/**
 * After a try in the open window: wait for `retryAt` (a refusal that lapses within the window) or the
 * next window; null when no canary is wanted any more (the loop plans afresh).
 */
export function planAfterAttempt(
  state: EscalationState,
  rules: EscalationRules,
  retryAt: number | null,
  now: number,
): HealingStep | null {
  if (!canaryWanted(state, rules, now)) return null;
  const resumeAt = retryAt ?? nextOpening(rules.window, now).opensAt;
  const when = retryAt
    ? `in ${formatDuration(resumeAt - now)}`
    : `at the next window (${describeNextWindow(rules.window, now)})`;
  return wait(
    state,
    'waiting_for_window',
    `escalated: trying again ${when}`,
    earliest(resumeAt, flagExpiresAt(state, rules), predictionDueAt(state, rules, now)),
  );
}
