import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type SymptomWindowState,
  DEDUP_IDS_CAP,
  EXACT_EVENTS_CAP,
  SymptomWindow,
  WINDOW_MS,
  hashId,
} from '../../src/domain/symptom-window.js';

const T0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const HOUR = 3600_000;

describe('SymptomWindow', () => {
  test('counts events whose time is within the last 24 h', () => {
    const w = new SymptomWindow();
    assert.equal(w.add(T0, undefined, T0), 'counted');
    assert.equal(w.add(T0 + 11 * HOUR, undefined, T0 + 11 * HOUR), 'counted');
    assert.equal(w.count(T0 + 11 * HOUR), 2);
    assert.equal(w.count(T0 + WINDOW_MS - 1), 2);
    assert.equal(w.count(T0 + WINDOW_MS), 1, 'an event leaves exactly 24 h after it happened');
    assert.equal(w.nextExpiry(T0 + WINDOW_MS), T0 + 11 * HOUR + WINDOW_MS);
  });

  test('an event 24 h old or older is stale and not counted', () => {
    const w = new SymptomWindow();
    assert.equal(w.add(T0 - WINDOW_MS, undefined, T0), 'stale');
    assert.equal(w.add(T0 - WINDOW_MS + 1, undefined, T0), 'counted');
    assert.equal(w.count(T0), 1);
  });

  test('the same id counts once, even after the event left the window, and survives serialisation', () => {
    const w = new SymptomWindow();
    assert.equal(w.add(T0, 'a', T0), 'counted');
    assert.equal(w.add(T0 + 1000, 'a', T0 + 1000), 'duplicate');
    const restored = new SymptomWindow(JSON.parse(JSON.stringify(w.toState())) as SymptomWindowState);
    assert.equal(restored.add(T0 + 2000, 'a', T0 + 2000), 'duplicate');
    assert.equal(restored.add(T0 + 2000, 'b', T0 + 2000), 'counted');
    assert.equal(restored.count(T0 + 2000), 2);
  });

  test('out-of-order event times are kept sorted', () => {
    const w = new SymptomWindow();
    w.add(T0, undefined, T0);
    w.add(T0 - 10 * HOUR, undefined, T0);
    w.add(T0 - 5 * HOUR, undefined, T0);
    assert.deepEqual(w.toState().events, [T0 - 10 * HOUR, T0 - 5 * HOUR, T0]);
    assert.equal(w.count(T0 + 14 * HOUR), 2);
  });

  test('beyond the exact cap, old events fold into minute buckets: the count stays exact, the state bounded', () => {
    const w = new SymptomWindow();
    const n = EXACT_EVENTS_CAP * 5;
    for (let i = 0; i < n; i++) w.add(T0 + i * 1000, `id-${i}`, T0 + i * 1000);
    const now = T0 + n * 1000;
    assert.equal(w.count(now), n);
    const state = w.toState();
    assert.equal(state.events.length, EXACT_EVENTS_CAP);
    assert.ok(state.buckets.length <= Math.ceil((n - EXACT_EVENTS_CAP) / 60) + 1);
    // A bucket expires when its last possible event does: never early, at most a minute late.
    const firstBucketEnd = state.buckets[0]![0] + 60_000 + WINDOW_MS;
    assert.equal(w.count(firstBucketEnd - 1), n);
    assert.ok(w.count(firstBucketEnd) < n);
  });

  test('remembered ids are capped', () => {
    const w = new SymptomWindow();
    for (let i = 0; i < DEDUP_IDS_CAP + 10; i++) w.add(T0, `id-${i}`, T0);
    assert.equal(w.toState().ids.length, DEDUP_IDS_CAP);
    assert.equal(w.hasSeen(`id-${DEDUP_IDS_CAP + 9}`), true);
    assert.equal(w.hasSeen('id-0'), false, 'the oldest ids are forgotten first');
  });

  test('clearCounts forgets counts but not ids', () => {
    const w = new SymptomWindow();
    w.add(T0, 'x', T0);
    w.clearCounts();
    assert.equal(w.count(T0), 0);
    assert.equal(w.add(T0, 'x', T0), 'duplicate');
  });

  test('hashId is stable and spreads similar ids', () => {
    assert.equal(hashId('file:/var/log/vllm.log:1234'), hashId('file:/var/log/vllm.log:1234'));
    const hashes = new Set(Array.from({ length: 10_000 }, (_, i) => hashId(`file:/var/log/vllm.log:${i}`)));
    assert.equal(hashes.size, 10_000);
  });
});
