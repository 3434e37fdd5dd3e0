// Every decision the two workflows take, as a typed code with its parameters. The words a person reads
// (topic, taken, action, reason) are rendered from the code here and nowhere else, so tools and tests
// match on `code`, and rewording a message changes no behaviour.
import { formatDuration } from './duration-text.js';
import { type RefusalCode, leaseGrantText } from './host-ledger.js';

export { leaseGrantText };
import { formatLocalTime } from './maintenance-window.js';

/** Where a decision belongs (the `state` query groups and healctl filters by it). */
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

/** A message a workflow refused before acting on it (its handler's name or what it carried). */
export type RefusedMessage =
  | 'symptom'
  | 'clearEscalation'
  | 'forceEscalation'
  | 'leaseDecision'
  | 'lease request'
  | 'lease release'
  | 'pause'
  | 'resume'
  | 'acknowledgeRestoreFailure'
  | 'acquireOperatorLease';

/** What happened to a canary's lease when its holder had stopped running it (coordinator, lease expiry). */
export type AbandonedLeaseRecovery =
  | { action: 'none' }
  | { action: 'restored'; downtimeMs: number }
  | { action: 'kept_promotion' }
  | { action: 'left_to_holder'; detail: string }
  | { action: 'restore_failed'; failure: string; host: string };

/** The parameters of each code. Times are epoch ms, durations ms, `tz` an IANA zone name. */
export interface DecisionParams {
  // ---- both workflows
  /** The start input or carried state was set aside; the run started fresh. */
  start_input_refused: { note: string };
  /** A signal or update payload was refused before it was acted on. */
  message_rejected: { message: RefusedMessage; problem: string };
  /** The run continued as new, its state carried. */
  continued_as_new: { historyLength: number; messages: number; nextRun: number };

  // ---- HealingWorkflow: symptoms and the escalation flag
  symptom_stale: { eventTime: number };
  escalation_armed: { count: number; threshold: number; alertOnly: string | null };
  /** The count reached the threshold of a kind that only counts. */
  escalation_not_armed: { count: number; advice: string };
  escalation_lapsed: { lastSymptomAt: number | null; tz: string; ttlMs: number };
  escalation_cleared: { reason: string; wasArmed: boolean; forgotten: number };
  escalation_forced: { reason: string; alertOnly: string | null };
  /** An armed escalation was offered a whole window and no canary ran in it. */
  window_missed: {
    opensAt: number;
    closesAt: number;
    tz: string;
    /** The last refusal in that window, as it was rendered then. */
    lastRefusal: string | null;
    /** Its code, and the host's refusal code when the host refused (absent in decisions of 0.2). */
    lastRefusalCode?: string | null;
    lastHostRefusal?: RefusalCode | null;
  };
  waiting_for_window: { window: string };
  /** A count-only kind's workflow ended after 24 h without a symptom. */
  workflow_ended: { kind: string; advice: string };

  // ---- HealingWorkflow: predictive mode
  recommendation_updated: { why: string; best: { id: string; why: string } | null; basis: string };
  vram_not_measured: { failure: string };
  no_recommendation: { failure: string };

  // ---- HealingWorkflow: the lease and the canary
  lease_answer_rejected: { problem: string };
  late_lease_returned: { requestId: string };
  lease_not_released: { failure: string };
  /** `failure`: why the request failed, when it did (absent: no answer in time; before 0.3 always). */
  lease_unanswered: { waitedMs: number; failure?: string };
  canary_refused_no_fit: { considered: number };
  canary_refused_window_closing: { windowLeftMs: number; predictedDowntimeMs: number };
  /** The coordinator refused the lease (its reason is rendered by the host ledger; null: a 0.2 host). */
  canary_refused_by_host: { reason: string; refusal: RefusalCode | null };
  canary_dropped: Record<string, never>;
  canary_started: { candidateId: string; why: string; predictedDowntimeMs: number; budgetLeftMs: number };
  candidate_promoted: { candidateId: string; result: string; downtimeMs: number };
  canary_failed: { reason: string };
  previous_config_restored: { downtimeMs: number };
  restore_failed: { failure: string; host: string };

  // ---- HostCoordinatorWorkflow
  lease_granted: { kind: string; predictedDowntimeMs: number; budgetLeftMs: number };
  lease_refused: { kind: string; reason: string; refusal: RefusalCode };
  operator_lease_granted: { purpose: string; reason: string; grant: string };
  operator_lease_refused: { purpose: string; reason: string; refusal: RefusalCode };
  lease_withdrawn: { holderWorkflowId: string };
  /** 0.3: the holder asked again, so the grant's answer never reached it: its unused lease is given up. */
  lease_given_up: { kind: string; leaseId: string };
  lease_released: {
    kind: string;
    outcome: string;
    downtimeMs: number;
    budgetLeftMs: number;
    overrunMs: number;
    cooldownMs: number | null;
  };
  release_ignored: { leaseId: string };
  canaries_stopped: { what: 'restore' | 'rollback'; kind: string; failure: string; host: string };
  budget_report_failed: { failure: string };
  lease_expired: { kind: string; ttlMs: number; recovery: AbandonedLeaseRecovery };
  host_paused: { reason: string };
  host_resumed: { reason: string };
  host_not_paused: Record<string, never>;
  restore_failure_acknowledged: { reason: string; kind: string; failure: string };
  no_restore_failure_latched: Record<string, never>;
}

export type DecisionCode = keyof DecisionParams;

/** A decision as the workflows make it: its code and parameters, no words. */
export type DecisionEvent = { [C in DecisionCode]: { code: C; params: DecisionParams[C] } }[DecisionCode];

/** The words of a decision, rendered from its code. */
export interface DecisionText {
  topic: DecisionTopic;
  /** true: the action was taken; false: it was refused or rejected. */
  taken: boolean;
  /** What was decided, in a few words ("canary refused"). */
  action: string;
  /** Why, in words a person on call understands. */
  reason: string;
}

type Renderers = { [C in DecisionCode]: (p: DecisionParams[C]) => DecisionText };

const say = (topic: DecisionTopic, taken: boolean, action: string, reason: string): DecisionText => ({
  topic,
  taken,
  action,
  reason,
});

const MESSAGE_TOPIC: Record<RefusedMessage, DecisionTopic> = {
  symptom: 'symptom',
  clearEscalation: 'operator',
  forceEscalation: 'operator',
  leaseDecision: 'operator',
  'lease request': 'lease',
  'lease release': 'lease',
  pause: 'operator',
  resume: 'operator',
  acknowledgeRestoreFailure: 'operator',
  acquireOperatorLease: 'operator',
};

const RENDER: Renderers = {
  start_input_refused: (p) => say('history', false, 'start input refused', p.note),
  message_rejected: (p) => say(MESSAGE_TOPIC[p.message], false, `${p.message} rejected`, p.problem),
  continued_as_new: (p) =>
    say(
      'history',
      true,
      'continued as new',
      `history reached ${p.historyLength} events (${p.messages} messages); state carried to run ${p.nextRun}`,
    ),

  symptom_stale: (p) =>
    say(
      'symptom',
      false,
      'stale symptom ignored',
      `event time ${new Date(p.eventTime).toISOString()} is more than 24 h ago`,
    ),
  escalation_armed: (p) =>
    say(
      'escalation',
      true,
      'escalation armed',
      `${p.count} symptoms in 24 h ≥ threshold ${p.threshold}` +
        (p.alertOnly !== null ? `; alert only, no canary: ${p.alertOnly}` : ''),
    ),
  escalation_not_armed: (p) =>
    say('escalation', false, 'escalation not armed', `${p.count} symptoms in 24 h: ${p.advice}`),
  escalation_lapsed: (p) =>
    say(
      'escalation',
      false,
      'escalation lapsed',
      `no symptom since ${p.lastSymptomAt === null ? 'the escalation' : formatLocalTime(p.lastSymptomAt, p.tz)} (TTL ${formatDuration(p.ttlMs)})`,
    ),
  escalation_cleared: (p) =>
    say(
      'operator',
      true,
      'escalation cleared',
      `${p.reason} (was ${p.wasArmed ? 'armed' : 'not armed'}, ${p.forgotten} symptoms in 24 h forgotten)`,
    ),
  escalation_forced: (p) =>
    say(
      'operator',
      true,
      'escalation forced',
      p.alertOnly !== null ? `${p.reason}; alert only, no canary: ${p.alertOnly}` : p.reason,
    ),
  window_missed: (p) =>
    say(
      'window',
      false,
      'window missed',
      `armed through the window ${formatLocalTime(p.opensAt, p.tz)}-${formatLocalTime(p.closesAt, p.tz)} ${p.tz} and no canary ran${p.lastRefusal !== null ? `: ${p.lastRefusal}` : ''}`,
    ),
  waiting_for_window: (p) => say('window', true, 'waiting for the maintenance window', p.window),
  workflow_ended: (p) => say('history', true, 'workflow ended', `no ${p.kind} symptom in 24 h; ${p.advice}`),

  recommendation_updated: (p) =>
    say(
      'predict',
      true,
      'recommendation updated',
      `${p.why}: ${p.best ? `best fitting candidate ${p.best.id} (${p.best.why})` : 'no candidate is predicted to fit'}; ${p.basis}`,
    ),
  vram_not_measured: (p) => say('predict', false, 'VRAM not measured', p.failure),
  no_recommendation: (p) => say('predict', false, 'no recommendation', p.failure),

  lease_answer_rejected: (p) => say('lease', false, 'lease answer rejected', p.problem),
  late_lease_returned: (p) =>
    say('lease', false, 'late lease returned', `answer to an abandoned request ${p.requestId}`),
  lease_not_released: (p) =>
    say(
      'lease',
      false,
      'lease not released',
      `host coordinator unreachable (${p.failure}); it expires on its own`,
    ),
  lease_unanswered: (p) =>
    say(
      'lease',
      false,
      'no answer from the host coordinator',
      p.failure !== undefined
        ? `the lease request failed after ${formatDuration(p.waitedMs)} (${p.failure}); asking again in 1 m`
        : `no answer within ${formatDuration(p.waitedMs)}; asking again in 1 m`,
    ),
  canary_refused_no_fit: (p) =>
    say('canary', false, 'canary refused', `no candidate is predicted to fit (${p.considered} considered)`),
  canary_refused_window_closing: (p) =>
    say(
      'canary',
      false,
      'canary refused',
      `window closes in ${formatDuration(p.windowLeftMs)} < predicted ${formatDuration(p.predictedDowntimeMs)}`,
    ),
  canary_refused_by_host: (p) => say('canary', false, 'canary refused', p.reason),
  canary_dropped: () =>
    say('canary', false, 'canary dropped', 'escalation no longer armed when the lease arrived'),
  canary_started: (p) =>
    say(
      'canary',
      true,
      'canary started',
      `${p.candidateId}: ${p.why}; predicted downtime ${formatDuration(p.predictedDowntimeMs)}, budget ${formatDuration(p.budgetLeftMs)} left`,
    ),
  candidate_promoted: (p) =>
    say(
      'canary',
      true,
      'candidate promoted',
      `${p.candidateId}: ${p.result}; downtime ${formatDuration(p.downtimeMs)}; escalation cleared`,
    ),
  canary_failed: (p) => say('canary', false, 'canary failed', p.reason),
  previous_config_restored: (p) =>
    say(
      'restore',
      true,
      'previous config restored',
      `service healthy again after ${formatDuration(p.downtimeMs)}`,
    ),
  restore_failed: (p) =>
    say(
      'restore',
      false,
      'RESTORE FAILED',
      `${p.failure}; canaries stop on ${p.host} until an operator acknowledges (healctl ack ${p.host})`,
    ),

  lease_granted: (p) =>
    say('lease', true, `lease granted to ${p.kind}`, leaseGrantText(p.predictedDowntimeMs, p.budgetLeftMs)),
  lease_refused: (p) => say('lease', false, `lease refused to ${p.kind}`, p.reason),
  operator_lease_granted: (p) =>
    say('lease', true, `lease granted to ${p.purpose}`, `${p.reason} — ${p.grant}`),
  operator_lease_refused: (p) => say('lease', false, `lease refused to ${p.purpose}`, p.reason),
  lease_given_up: (p) =>
    say(
      'lease',
      false,
      'unused lease given up',
      `${p.kind} asked again, so the answer to lease ${p.leaseId} was lost; charged nothing`,
    ),
  lease_withdrawn: (p) =>
    say('lease', false, 'lease withdrawn', `${p.holderWorkflowId} could not be reached`),
  lease_released: (p) =>
    say(
      'budget',
      true,
      `lease released (${p.outcome})`,
      `${p.kind}: downtime ${formatDuration(p.downtimeMs)} charged, budget ${formatDuration(p.budgetLeftMs)} left` +
        (p.overrunMs > 0 ? `, overrun ${formatDuration(p.overrunMs)}` : '') +
        (p.cooldownMs !== null ? `; cooldown ${formatDuration(p.cooldownMs)}` : ''),
    ),
  release_ignored: (p) =>
    say(
      'lease',
      false,
      'release ignored',
      `lease ${p.leaseId} is not the one held (already released or expired)`,
    ),
  canaries_stopped: (p) =>
    say(
      'restore',
      false,
      'canaries stopped',
      `${p.what} failed on ${p.kind}: ${p.failure}; acknowledge with healctl ack ${p.host}`,
    ),
  budget_report_failed: (p) =>
    say('budget', false, 'budget report failed', `the host could not record the budget: ${p.failure}`),
  lease_expired: (p) =>
    say(
      'lease',
      false,
      'lease expired',
      `${p.kind} held the lease past ${formatDuration(p.ttlMs)}; ${recoveryText(p.recovery)}`,
    ),
  host_paused: (p) => say('operator', true, 'host paused', p.reason),
  host_resumed: (p) => say('operator', true, 'host resumed', p.reason),
  host_not_paused: () => say('operator', false, 'host resumed', 'host was not paused'),
  restore_failure_acknowledged: (p) =>
    say(
      'operator',
      true,
      'restore failure acknowledged',
      `${p.reason} (failure was: ${p.kind}: ${p.failure})`,
    ),
  no_restore_failure_latched: () =>
    say('operator', false, 'restore failure acknowledged', 'no restore failure was latched'),
};

function recoveryText(r: AbandonedLeaseRecovery): string {
  switch (r.action) {
    case 'none':
      return 'predicted downtime charged';
    case 'restored':
      return `its holder no longer ran the canary: previous config restored (${formatDuration(r.downtimeMs)} downtime); predicted downtime charged as well`;
    case 'kept_promotion':
      return 'its holder no longer ran the canary, which had promoted its candidate: kept; predicted downtime charged';
    case 'left_to_holder':
      return `${r.detail}, so it restores on its own; predicted downtime charged`;
    case 'restore_failed':
      return `${r.failure}; canaries stop on ${r.host} until an operator acknowledges (healctl ack ${r.host})`;
  }
}

/** The words of a decision. */
export function renderDecision(event: DecisionEvent): DecisionText {
  return (RENDER[event.code] as (p: DecisionEvent['params']) => DecisionText)(event.params);
}

/** All codes, for documentation and exhaustiveness tests. */
export const DECISION_CODES = Object.keys(RENDER) as DecisionCode[];

export function isDecisionCode(code: string): code is DecisionCode {
  return Object.hasOwn(RENDER, code);
}
