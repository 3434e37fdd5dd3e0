// Finding decisions in a workflow's log by their typed code, never by their words: the words are rendered
// from the code (src/domain/decision-codes.ts) and may be reworded at any time; the code and its
// parameters are what a test checks.
import type { DecisionCode } from '../../src/domain/decision-codes.js';
import { type CodedDecision, type Decision, hasCode } from '../../src/domain/decision-log.js';

export { type CodedDecision, hasCode };

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
