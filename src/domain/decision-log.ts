// Every decision the loop takes or refuses, newest last: its typed code and parameters, and the words
// rendered from them (decision-codes.ts). Bounded, so it can be carried through continue-as-new and
// returned by a query at any symptom rate.
import {
  type DecisionCode,
  type DecisionEvent,
  type DecisionParams,
  type DecisionText,
  renderDecision,
} from './decision-codes.js';

export type { DecisionCode, DecisionTopic } from './decision-codes.js';

export const DECISION_LOG_CAP = 200;

/** Decisions recorded before codes existed (carried from runs of 0.1 and 0.2) have their words only. */
export const LEGACY_CODE = 'legacy';

export type Decision = DecisionText & {
  /** Epoch ms (workflow time). */
  at: number;
  /** What was decided, for tools and tests to match on (never the words). */
  code: DecisionCode | typeof LEGACY_CODE;
  params?: DecisionEvent['params'];
  /** Who asked, for operator actions. */
  by?: string;
  /** How many times in a row this same decision was taken (a storm of bad payloads is one entry). */
  repeats?: number;
};

/** A decision of a known code, its parameters typed by that code. */
export type CodedDecision<C extends DecisionCode> = Omit<Decision, 'code' | 'params'> & {
  code: C;
  params: DecisionParams[C];
};

/** Whether `d` has one of `codes` (and so the parameters of that code). */
export function hasCode<C extends DecisionCode>(
  d: Decision,
  ...codes: C[]
): d is Decision & CodedDecision<C> {
  return (codes as readonly string[]).includes(d.code) && d.params !== undefined;
}

/** The decision record of an event at `at`, its words rendered. */
export function decisionOf(event: DecisionEvent, at: number, by?: string): Decision {
  return { at, code: event.code, params: event.params, ...renderDecision(event), ...(by ? { by } : {}) };
}

export function appendDecision(log: Decision[], decision: Decision, cap = DECISION_LOG_CAP): void {
  const last = log[log.length - 1];
  if (
    last &&
    last.code === decision.code &&
    last.topic === decision.topic &&
    last.taken === decision.taken &&
    last.action === decision.action &&
    last.reason === decision.reason &&
    last.by === decision.by
  ) {
    last.repeats = (last.repeats ?? 1) + 1;
    last.at = decision.at;
    return;
  }
  log.push(decision);
  if (log.length > cap) log.splice(0, log.length - cap);
}
