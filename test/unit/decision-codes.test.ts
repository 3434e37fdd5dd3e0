// Decisions are typed codes; their words are rendered from the code and its parameters. Every code has a
// sample here (the type makes a new code without one fail to compile), and each must render to words with
// its figures in them, never a placeholder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DECISION_CODES,
  type DecisionEvent,
  type DecisionParams,
  renderDecision,
} from '../../src/domain/decision-codes.js';
import { appendDecision, decisionOf, type Decision } from '../../src/domain/decision-log.js';
import { carriedHealingStateSchema, check } from '../../src/workflows/message-schemas.js';

const T = Date.UTC(2026, 10, 28, 3, 4, 5);

const SAMPLES: { [C in keyof DecisionParams]: DecisionParams[C] } = {
  start_input_refused: { note: 'start input ignored' },
  message_rejected: { message: 'symptom', problem: 'kind: required' },
  continued_as_new: { historyLength: 4321, messages: 77, nextRun: 3 },
  symptom_stale: { eventTime: T },
  escalation_armed: { count: 3, threshold: 3, alertOnly: null },
  escalation_not_armed: { count: 3, advice: 'nothing heals it' },
  escalation_lapsed: { lastSymptomAt: T, tz: 'UTC', ttlMs: 14_400_000 },
  escalation_cleared: { reason: 'driver upgrade', wasArmed: true, forgotten: 4 },
  escalation_forced: { reason: 'test the loop', alertOnly: null },
  window_missed: { opensAt: T, closesAt: T + 3_600_000, tz: 'UTC', lastRefusal: 'canary refused (paused)' },
  waiting_for_window: { window: 'opens 03:00 UTC, in 5 h' },
  workflow_ended: { kind: 'made_up', advice: 'KLR_KIND_ACTIONS names it' },
  recommendation_updated: { why: 'new symptom', best: { id: 'gmu-0.88', why: 'fits' }, basis: 'vLLM 0.10' },
  vram_not_measured: { failure: 'nvidia-smi: not found' },
  no_recommendation: { failure: 'config unreadable' },
  lease_answer_rejected: { problem: 'granted: expected a boolean' },
  late_lease_returned: { requestId: 'req-9' },
  lease_not_released: { failure: 'not found' },
  lease_unanswered: { waitedMs: 120_000 },
  canary_refused_no_fit: { considered: 6 },
  canary_refused_window_closing: { windowLeftMs: 30_000, predictedDowntimeMs: 41_000 },
  canary_refused_by_host: { reason: 'budget 12 s left < predicted 41 s', refusal: 'budget' },
  canary_dropped: {},
  canary_started: {
    candidateId: 'gmu-0.88',
    why: 'fits',
    predictedDowntimeMs: 41_000,
    budgetLeftMs: 900_000,
  },
  candidate_promoted: { candidateId: 'gmu-0.88', result: 'healthy', downtimeMs: 38_000 },
  canary_failed: { reason: 'health check timed out' },
  previous_config_restored: { downtimeMs: 35_000 },
  restore_failed: { failure: 'restart exited 1', host: 'gpu-1' },
  lease_granted: { kind: 'vllm_oom', predictedDowntimeMs: 41_000, budgetLeftMs: 900_000 },
  lease_refused: { kind: 'vllm_oom', reason: 'host paused by alice', refusal: 'paused' },
  operator_lease_granted: { purpose: 'rollback', reason: 'bad config', grant: 'granted to alice' },
  operator_lease_refused: { purpose: 'rollback', reason: 'a canary holds the host', refusal: 'busy' },
  lease_given_up: { kind: 'vllm_oom', leaseId: 'l-1' },
  lease_withdrawn: { holderWorkflowId: 'kloros-healing/gpu-1/vllm_oom' },
  lease_released: {
    kind: 'vllm_oom',
    outcome: 'promoted',
    downtimeMs: 38_000,
    budgetLeftMs: 862_000,
    overrunMs: 0,
    cooldownMs: 21_600_000,
  },
  release_ignored: { leaseId: 'lease-1' },
  canaries_stopped: { what: 'restore', kind: 'vllm_oom', failure: 'restart exited 1', host: 'gpu-1' },
  budget_report_failed: { failure: 'EACCES' },
  lease_expired: { kind: 'vllm_oom', ttlMs: 1_800_000, recovery: { action: 'restored', downtimeMs: 9_000 } },
  host_paused: { reason: 'driver upgrade' },
  host_resumed: { reason: 'done' },
  host_not_paused: {},
  restore_failure_acknowledged: { reason: 'fixed by hand', kind: 'vllm_oom', failure: 'restart exited 1' },
  no_restore_failure_latched: {},
};

const events = Object.entries(SAMPLES).map(([code, params]) => ({ code, params }) as DecisionEvent);

test('every code renders to words, with no placeholder', () => {
  assert.deepEqual(new Set(DECISION_CODES), new Set(Object.keys(SAMPLES)));
  for (const event of events) {
    const text = renderDecision(event);
    assert.ok(text.action.length > 0 && text.reason.length > 0, event.code);
    assert.doesNotMatch(`${text.action} ${text.reason}`, /undefined|null|NaN|\[object/, event.code);
  }
});

test('the words carry the figures of the parameters', () => {
  const words = (e: DecisionEvent) => renderDecision(e).reason;
  assert.equal(
    words({ code: 'canary_refused_window_closing', params: SAMPLES.canary_refused_window_closing }),
    'window closes in 30 s < predicted 41 s',
  );
  assert.equal(
    words({ code: 'lease_released', params: SAMPLES.lease_released }),
    'vllm_oom: downtime 38 s charged, budget 14 m 22 s left; cooldown 6 h',
  );
  assert.match(
    words({ code: 'lease_expired', params: SAMPLES.lease_expired }),
    /previous config restored \(9 s/,
  );
  assert.equal(renderDecision({ code: 'host_not_paused', params: {} }).taken, false);
});

test('a repeated decision is one entry with a count; another code is a new entry', () => {
  const log: Decision[] = [];
  const rejected: DecisionEvent = { code: 'message_rejected', params: SAMPLES.message_rejected };
  appendDecision(log, decisionOf(rejected, T));
  appendDecision(log, decisionOf(rejected, T + 1));
  appendDecision(log, decisionOf({ code: 'symptom_stale', params: { eventTime: T } }, T + 2));
  assert.deepEqual(
    log.map((d) => [d.code, d.repeats ?? 1]),
    [
      ['message_rejected', 2],
      ['symptom_stale', 1],
    ],
  );
});

/** A fresh healing run's carried state with these decisions, read as a new run reads it. */
function carriedWith(decisions: unknown[]) {
  return check(carriedHealingStateSchema, {
    window: { events: [], buckets: [], ids: [] },
    lastSymptomAt: null,
    forced: null,
    armedAt: null,
    attempts: 0,
    lastCanary: null,
    recommendation: null,
    lastPredictedAt: null,
    lastSymptomDetails: null,
    hostFigures: null,
    decisions,
    totals: { counted: 0, duplicates: 0, stale: 0, rejected: 0 },
    runs: 1,
  });
}

test('decisions carried from releases without codes keep their words, coded legacy', () => {
  const old = { at: T, topic: 'canary', taken: true, action: 'candidate promoted', reason: 'x' };
  const checked = carriedWith([old]);
  assert.ok(checked.ok, checked.ok ? '' : checked.error);
  const decisions = (checked.value as { decisions: Decision[] }).decisions;
  assert.equal(decisions[0]?.code, 'legacy');
  assert.equal(decisions[0]?.action, 'candidate promoted');
});

test('a carried decision with a code this release does not know is legacy, its params dropped', () => {
  const unknown = {
    ...decisionOf({ code: 'canary_dropped', params: {} }, T),
    code: 'from_the_future',
    params: { x: 1 },
  };
  const known = decisionOf({ code: 'symptom_stale', params: { eventTime: T } }, T);
  const checked = carriedWith([unknown, known]);
  assert.ok(checked.ok, checked.ok ? '' : checked.error);
  const [first, second] = (checked.value as { decisions: Decision[] }).decisions;
  assert.equal(first?.code, 'legacy');
  assert.equal(first?.params, undefined);
  assert.equal(first?.action, 'canary dropped');
  assert.equal(second?.code, 'symptom_stale');
  assert.deepEqual(second?.params, { eventTime: T });
});
