// The escalation transitions of HealingWorkflow, pure: no Temporal server, no clock. Scenarios for each
// rule, then a property test over thousands of random symptom/operator/time schedules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type EscalationRules,
  type EscalationState,
  actionOf,
  canaryWanted,
  carriedState,
  clearEscalation,
  countSymptom,
  flagExpiresAt,
  forceEscalation,
  lapseIfExpired,
  modeOf,
  noteOffered,
  stateFromCarried,
} from '../../src/domain/healing-escalation.js';
import { currentWindow, parseMaintenanceWindow } from '../../src/domain/maintenance-window.js';
import { DEFAULT_POLICY, type HealingPolicy } from '../../src/domain/policy.js';
import { SymptomWindow } from '../../src/domain/symptom-window.js';
import { decisionsOf } from '../support/decisions.js';
import { prng } from '../support/prng.js';

const H = 3600_000;
/** 2026-11-28 10:00 UTC: the 03:00-07:00 window opens at 03:00 the next day. */
const T0 = Date.UTC(2026, 10, 28, 10);

function rulesFor(kind: string, overrides: Partial<HealingPolicy> = {}, safeRules = true): EscalationRules {
  const policy = { ...DEFAULT_POLICY, ...overrides };
  return {
    kind,
    policy,
    window: parseMaintenanceWindow(policy.maintenanceWindow, policy.maintenanceTimeZone),
    safeRules,
  };
}

const fresh = (): EscalationState => stateFromCarried(null, new SymptomWindow());
const codes = (s: EscalationState) => s.decisions.map((d) => d.code);
const symptom = (kind: string, at: number, id?: string) => ({
  kind,
  eventTime: new Date(at).toISOString(),
  ...(id ? { id } : {}),
});

test('a healable kind arms once at the threshold, and wants its canary', () => {
  const rules = rulesFor('vllm_oom');
  const s = fresh();
  for (let i = 0; i < 2; i++)
    assert.equal(countSymptom(s, rules, symptom('vllm_oom', T0 + i), T0 + i).outcome, 'counted');
  assert.equal(s.armedAt, null);
  const third = countSymptom(s, rules, symptom('vllm_oom', T0 + 2), T0 + 2);
  assert.equal(third.wake, true);
  assert.equal(s.armedAt, T0 + 2);
  countSymptom(s, rules, symptom('vllm_oom', T0 + 3), T0 + 3);
  assert.deepEqual(codes(s), ['escalation_armed']);
  assert.equal(modeOf(s, rules), 'canary');
  assert.equal(canaryWanted(s, rules, T0 + 3), true);
});

test('a kind that only counts never arms and says so once per time it reaches the threshold', () => {
  const rules = rulesFor('made_up_kind');
  assert.equal(actionOf(rules), 'count');
  const s = fresh();
  for (let i = 0; i < 5; i++) countSymptom(s, rules, symptom('made_up_kind', T0 + i), T0 + i);
  assert.equal(s.armedAt, null);
  assert.deepEqual(codes(s), ['escalation_not_armed']);
  assert.equal(canaryWanted(s, rules, T0 + 5), false);
  assert.match(forceEscalation(s, rules, { by: 'ops', reason: 'try' }, T0 + 6) ?? '', /only counts/);
  assert.equal(s.armedAt, null);
});

test('a hardware kind arms to alert but never wants a canary', () => {
  const rules = rulesFor('gpu_xid');
  const s = fresh();
  for (let i = 0; i < 3; i++) countSymptom(s, rules, symptom('gpu_xid', T0 + i), T0 + i);
  assert.notEqual(s.armedAt, null);
  assert.equal(modeOf(s, rules), 'predictive');
  assert.equal(canaryWanted(s, rules, T0 + 3), false);
  assert.deepEqual(codes(s), ['escalation_armed']);
  assert.match(decisionsOf(s, 'escalation_armed')[0]!.params.alertOnly ?? '', /./, 'alert only, no canary');
});

test('the flag lapses after its TTL, but not before the window it is owed has closed', () => {
  const rules = rulesFor('vllm_oom', { escalationFlagTtlSeconds: 3600 });
  const s = fresh();
  for (let i = 0; i < 3; i++) countSymptom(s, rules, symptom('vllm_oom', T0 + i), T0 + i);
  const expires = flagExpiresAt(s, rules);
  assert.equal(expires, Date.UTC(2026, 10, 29, 7), 'the close of the next 03:00-07:00 window');
  lapseIfExpired(s, rules, T0 + 2 * H);
  assert.notEqual(s.armedAt, null, 'TTL passed, window still owed');
  lapseIfExpired(s, rules, expires);
  assert.equal(s.armedAt, null);
  assert.equal(codes(s).at(-1), 'escalation_lapsed');

  // Replaying 0.1 histories: the TTL alone.
  const old = rulesFor('vllm_oom', { escalationFlagTtlSeconds: 3600 }, false);
  const s01 = fresh();
  for (let i = 0; i < 3; i++) countSymptom(s01, old, symptom('vllm_oom', T0 + i), T0 + i);
  lapseIfExpired(s01, old, T0 + 2 + H);
  assert.equal(s01.armedAt, null);
});

test('a window offered to an armed escalation that closes with no canary is missed, with the last refusal', () => {
  const rules = rulesFor('vllm_oom');
  const s = fresh();
  for (let i = 0; i < 3; i++) countSymptom(s, rules, symptom('vllm_oom', T0 + i), T0 + i);
  const opens = Date.UTC(2026, 10, 29, 3);
  noteOffered(s, rules, currentWindow(rules.window, opens + 1000));
  assert.equal(s.offered?.opensAt, opens);
  s.decisions.push({
    at: opens + 2000,
    code: 'canary_refused_by_host',
    params: { reason: 'host paused', refusal: 'paused' },
    topic: 'canary',
    taken: false,
    action: 'canary refused',
    reason: 'host paused',
  });
  lapseIfExpired(s, rules, Date.UTC(2026, 10, 29, 7));
  assert.equal(s.counters.missedWindows, 1);
  // "armed through the window 03:00-07:00 UTC and no canary ran: canary refused (host paused)"
  assert.deepEqual(decisionsOf(s, 'window_missed')[0]?.params, {
    opensAt: opens,
    closesAt: Date.UTC(2026, 10, 29, 7),
    tz: 'UTC',
    lastRefusal: 'canary refused (host paused)',
    lastRefusalCode: 'canary_refused_by_host',
    lastHostRefusal: 'paused',
  });
});

test('clear forgets the counts; force arms at once with a fresh attempt cap', () => {
  const rules = rulesFor('vllm_oom');
  const s = fresh();
  for (let i = 0; i < 3; i++) countSymptom(s, rules, symptom('vllm_oom', T0 + i), T0 + i);
  s.attempts = 2;
  clearEscalation(s, { by: 'alice', reason: 'driver fixed' }, T0 + 10);
  assert.equal(s.armedAt, null);
  assert.equal(s.symptoms.count(T0 + 10), 0);
  assert.equal(s.decisions.at(-1)?.by, 'alice');
  assert.equal(forceEscalation(s, rules, { by: 'bob', reason: 'test' }, T0 + 20), null);
  assert.equal(s.armedAt, T0 + 20);
  assert.equal(s.attempts, 0);
  assert.deepEqual(codes(s).slice(-2), ['escalation_cleared', 'escalation_forced']);
});

test('the same id counts once; an event older than 24 h is stale and recorded', () => {
  const rules = rulesFor('vllm_oom');
  const s = fresh();
  assert.equal(countSymptom(s, rules, symptom('vllm_oom', T0, 'a'), T0).outcome, 'counted');
  assert.equal(countSymptom(s, rules, symptom('vllm_oom', T0, 'a'), T0 + 1).outcome, 'duplicate');
  assert.equal(countSymptom(s, rules, symptom('vllm_oom', T0 - 25 * H), T0 + 2).outcome, 'stale');
  assert.deepEqual(s.totals, { counted: 1, duplicates: 1, stale: 1, rejected: 0 });
  assert.deepEqual(codes(s), ['symptom_stale']);
});

test('property: over 5,000 random schedules the flag and the counts keep their invariants', () => {
  const kinds = ['vllm_oom', 'gpu_xid', 'made_up_kind'];
  for (let seed = 1; seed <= 5000; seed++) {
    const r = prng(seed);
    const kind = r.pick(kinds);
    const rules = rulesFor(kind, {
      threshold24h: r.int(1, 4),
      escalationFlagTtlSeconds: r.pick([0, 3600, 14_400]),
      defaultMode: r.pick(['predictive', 'canary'] as const),
    });
    let s = fresh();
    let now = T0;
    let counted = 0;
    for (let step = 0; step < 30; step++) {
      now += r.pick([1000, 60_000, H, 6 * H, 25 * H]);
      const what = r.int(0, 9);
      if (what < 6) {
        const at = now - r.pick([0, 1000, H, 30 * H]);
        const id = r.chance(0.3) ? `id-${r.int(0, 5)}` : undefined;
        if (countSymptom(s, rules, symptom(kind, at, id), now).outcome === 'counted') counted++;
      } else if (what === 6) {
        clearEscalation(s, { by: 'op', reason: 'r' }, now);
      } else if (what === 7) {
        forceEscalation(s, rules, { by: 'op', reason: 'r' }, now);
      } else if (what === 8) {
        // Continue-as-new: the next run starts from what is carried.
        const carried = JSON.parse(JSON.stringify(carriedState(s, true))) as ReturnType<typeof carriedState>;
        s = stateFromCarried(carried, new SymptomWindow(carried.window));
      } else {
        noteOffered(s, rules, currentWindow(rules.window, now));
      }
      lapseIfExpired(s, rules, now);
      const where = `seed ${seed}, step ${step}`;
      assert.equal(s.totals.counted, counted, `${where}: counted symptoms`);
      assert.ok(s.symptoms.count(now) <= counted, `${where}: the window holds no more than was counted`);
      if (actionOf(rules) === 'count') assert.equal(s.armedAt, null, `${where}: a count-only kind armed`);
      if (actionOf(rules) !== 'heal') assert.equal(canaryWanted(s, rules, now), false, `${where}: canary`);
      const expires = flagExpiresAt(s, rules);
      if (s.armedAt !== null && expires !== null) assert.ok(expires > now, `${where}: armed past its expiry`);
      if (s.offered !== null) assert.notEqual(s.armedAt, null, `${where}: a window offered to nothing`);
    }
  }
});
