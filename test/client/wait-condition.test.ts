// healctl wait's conditions on one state answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkWait } from '../../src/client/cli/wait-condition.js';
import type { HealingStateView } from '../../src/workflows/healing-messages.js';

const START = Date.parse('2026-12-02T03:00:00Z');
const view = (over: Partial<HealingStateView>): HealingStateView =>
  ({ phase: 'watching', armed: false, lastCanary: null, ...over }) as HealingStateView;
const canary = (outcome: 'promoted' | 'restored' | 'restore_failed', at: number) => ({
  at,
  candidateId: 'gpu_memory_utilization=0.93',
  changes: { 'gpu-memory-utilization': 0.93 },
  outcome,
  reason: 'because',
  downtimeMs: 1_000,
  measuredVramMb: null,
});

test('armed and idle hold at once when they already do', () => {
  assert.equal(checkWait(view({ armed: true }), 'armed', START).done, true);
  assert.equal(checkWait(view({ armed: false }), 'armed', START).done, false);
  assert.equal(checkWait(view({ phase: 'waiting_for_window' }), 'idle', START).done, true);
  for (const phase of ['canary_running', 'restoring', 'requesting_lease'] as const)
    assert.equal(checkWait(view({ phase }), 'idle', START).done, false, phase);
});

test('promoted and restored need a canary that ended after the wait began; the other outcome fails at once', () => {
  assert.equal(checkWait(view({ lastCanary: canary('promoted', START - 1) }), 'promoted', START).done, false);
  const met = checkWait(view({ lastCanary: canary('promoted', START + 1) }), 'promoted', START);
  assert.deepEqual(met, { done: true, text: 'promoted: gpu_memory_utilization=0.93 (because)' });
  const other = checkWait(view({ lastCanary: canary('restore_failed', START + 1) }), 'promoted', START);
  assert.equal(other.done, false);
  assert.match(!other.done ? (other.failed ?? '') : '', /ended restore_failed, not promoted/);
  assert.equal(checkWait(view({ lastCanary: canary('restored', START + 5) }), 'restored', START).done, true);
});
