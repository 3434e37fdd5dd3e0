// What HealingWorkflow does next, planned from its state alone (no server, no clock).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type EscalationRules, countSymptom, stateFromCarried } from '../../src/domain/healing-escalation.js';
import { IDLE_END_MS, planAfterAttempt, planNext } from '../../src/domain/healing-plan.js';
import { parseMaintenanceWindow } from '../../src/domain/maintenance-window.js';
import { DEFAULT_POLICY, type HealingPolicy } from '../../src/domain/policy.js';
import { SymptomWindow } from '../../src/domain/symptom-window.js';

const H = 3600_000;
const T0 = Date.UTC(2026, 10, 28, 10); // the 03:00-07:00 UTC window opens in 17 h

function rulesFor(kind: string, overrides: Partial<HealingPolicy> = {}): EscalationRules {
  const policy = { ...DEFAULT_POLICY, ...overrides };
  return { kind, policy, window: parseMaintenanceWindow(policy.maintenanceWindow, 'UTC'), safeRules: true };
}

function armedState(rules: EscalationRules, at = T0) {
  const s = stateFromCarried(null, new SymptomWindow());
  for (let i = 0; i < 3; i++)
    countSymptom(s, rules, { kind: rules.kind, eventTime: new Date(at).toISOString() }, at);
  return s;
}

const ctx = { phase: 'watching' as const, runStartedAt: T0, announcedOpening: null };

test('new symptoms are predicted first; then an armed escalation waits for the window, announced once', () => {
  const rules = rulesFor('vllm_oom');
  const s = armedState(rules);
  assert.deepEqual(planNext(s, rules, T0, { ...ctx, phase: 'starting' }), {
    type: 'predict',
    phase: 'watching',
    next: 'measuring VRAM and predicting candidate configs',
  });
  s.lastPredictedAt = T0;
  s.symptomsSincePrediction = false;
  const step = planNext(s, rules, T0, ctx);
  assert.equal(step.type, 'wait');
  if (step.type !== 'wait') return;
  const opens = Date.UTC(2026, 10, 29, 3);
  assert.equal(step.phase, 'waiting_for_window');
  assert.equal(step.until, opens);
  assert.equal(step.announce?.opensAt, opens);
  assert.equal(step.announce?.decision.code, 'waiting_for_window');
  const again = planNext(s, rules, T0 + 60_000, { ...ctx, announcedOpening: opens });
  assert.equal(again.type === 'wait' && again.announce, undefined, 'said once per opening');
});

test('in the open window it attempts; at the attempt cap it is blocked; afterwards it waits for the next window', () => {
  const rules = rulesFor('vllm_oom', { escalationFlagTtlSeconds: 0 });
  const s = armedState(rules);
  s.symptomsSincePrediction = false;
  const inWindow = Date.UTC(2026, 10, 29, 4);
  const step = planNext(s, rules, inWindow, ctx);
  assert.equal(step.type, 'attempt');
  assert.equal(step.type === 'attempt' && step.occurrence.closesAt, Date.UTC(2026, 10, 29, 7));
  const after = planAfterAttempt(s, rules, null, inWindow + 60_000);
  assert.equal(after?.type === 'wait' && after.until, Date.UTC(2026, 10, 30, 3));
  const retry = planAfterAttempt(s, rules, inWindow + 120_000, inWindow + 60_000);
  assert.equal(retry?.type === 'wait' && retry.until, inWindow + 120_000);
  s.attempts = rules.policy.maxAttempts;
  const blocked = planNext(s, rules, inWindow, ctx);
  assert.equal(blocked.type === 'wait' && blocked.phase, 'blocked');
  s.armedAt = null;
  assert.equal(planAfterAttempt(s, rules, null, inWindow), null, 'nothing wanted: plan afresh');
});

test('a kind that only counts ends after 24 h without a symptom; one that heals never ends', () => {
  const counting = rulesFor('made_up_kind');
  const s = stateFromCarried(null, new SymptomWindow());
  const idle = planNext(s, counting, T0 + H, ctx);
  assert.equal(idle.type === 'wait' && idle.until, T0 + IDLE_END_MS);
  assert.deepEqual(planNext(s, counting, T0 + IDLE_END_MS, ctx), { type: 'end' });
  const healing = rulesFor('vllm_oom');
  assert.equal(planNext(s, healing, T0 + 2 * IDLE_END_MS, ctx).type, 'wait');
});
