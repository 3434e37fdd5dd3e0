// Every decision the loop takes or refuses, with its reason, newest last. Bounded, so it can be carried
// through continue-as-new and returned by a query at any symptom rate.

export const DECISION_LOG_CAP = 200;

export type DecisionTopic =
  | 'symptom'
  | 'escalation'
  | 'predict'
  | 'window'
  | 'lease'
  | 'canary'
  | 'restore'
  | 'operator'
  | 'budget'
  | 'history';

export interface Decision {
  /** Epoch ms (workflow time). */
  at: number;
  topic: DecisionTopic;
  /** true: the action was taken; false: it was refused or rejected. */
  taken: boolean;
  /** What was decided, in a few words ("canary refused", "symptom counted"). */
  action: string;
  /** Why, in words a person on call understands. */
  reason: string;
  /** Who asked, for operator actions. */
  by?: string;
  /** How many times in a row this same decision was taken (a storm of bad payloads is one entry). */
  repeats?: number;
}

export function appendDecision(log: Decision[], decision: Decision, cap = DECISION_LOG_CAP): void {
  const last = log[log.length - 1];
  if (
    last &&
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
