// Finding decisions in a workflow's log by their typed code, never by their words: the words are rendered
// from the code (src/domain/decision-codes.ts) and may be reworded at any time; the code and its
// parameters are what a test checks.
import type { DecisionCode, DecisionParams } from '../../src/domain/decision-codes.js';
import type { Decision } from '../../src/domain/decision-log.js';

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

/** The decisions of a log (or of a state view) with one of `codes`, oldest first. */
export function decisionsOf<C extends DecisionCode>(
  log: readonly Decision[] | { decisions: readonly Decision[] },
  ...codes: [C, ...C[]]
): CodedDecision<C>[] {
  const decisions = 'decisions' in log ? log.decisions : log;
  return decisions.filter((d): d is Decision & CodedDecision<C> => hasCode(d, ...codes));
}

/** The codes of a log's decisions, oldest first (for assertion messages). */
export function codesOf(log: readonly Decision[] | { decisions: readonly Decision[] }): string[] {
  return ('decisions' in log ? log.decisions : log).map((d) => d.code);
}
