// How a canary's end changes a HealingWorkflow's state, pure: the record, the counters, the escalation and
// the release the coordinator is charged with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type RunningCanary,
  canaryFailed,
  canaryPromoted,
  canaryRestored,
  canaryStarted,
  restoreFailed,
} from '../../src/domain/healing-canary.js';
import { stateFromCarried } from '../../src/domain/healing-escalation.js';
import { SymptomWindow } from '../../src/domain/symptom-window.js';
import { decisionsOf } from '../support/decisions.js';

const T0 = Date.UTC(2026, 10, 29, 3, 5);

function armed() {
  const s = stateFromCarried(null, new SymptomWindow());
  for (let i = 0; i < 3; i++) s.symptoms.add(T0 - 1000 * i, undefined, T0);
  s.armedAt = T0 - 3600_000;
  s.offered = { opensAt: T0 - 300_000, closesAt: T0 + 3600_000, canaryRan: false };
  return s;
}

const run = (): RunningCanary => ({
  candidate: {
    id: 'gpu_memory_utilization=0.88',
    changes: { 'gpu-memory-utilization': 0.88 },
    predictedVramMb: 70_000,
    predictedKvMb: 40_000,
    headroomMb: 2000,
    fits: true,
    predictedDowntimeMs: 40_000,
    givesUp: 'KV cache',
    why: 'fits',
  },
  leaseId: 'lease-1',
  startedAt: T0,
  mode: 'canary',
  result: null,
});

test('a promoted candidate clears the escalation and the counts, and releases with its downtime', () => {
  const s = armed();
  const r = run();
  canaryStarted(s, r, 900_000, T0);
  assert.equal(s.attempts, 1);
  assert.equal(s.offered?.canaryRan, true);
  r.result = {
    outcome: 'passed',
    reason: 'healthy',
    downtimeMs: 38_000,
    measuredVramMb: 69_000,
    measured: { vllmVersion: '0.10.1.1', kvCacheMb: 40_960, kvTokens: 300_000, weightsMb: 15_317 },
  };
  const release = canaryPromoted(s, r, r.result, T0 + 60_000);
  assert.deepEqual(
    { outcome: release.outcome, downtimeMs: release.downtimeMs, restore: release.canary?.restoreDowntimeMs },
    { outcome: 'promoted', downtimeMs: 38_000, restore: null },
  );
  assert.equal(s.armedAt, null);
  assert.equal(s.symptoms.count(T0 + 60_000), 0);
  assert.equal(s.lastCanary?.outcome, 'promoted');
  assert.equal(s.lastCanary?.prediction?.measuredKvMb, 40_960, 'the prediction is checked against vLLM');
  assert.deepEqual(s.counters.canaryRuns, { 'promoted|canary': 1 });
  assert.deepEqual(
    s.decisions.map((d) => d.code),
    ['canary_started', 'candidate_promoted'],
  );
});

test('a failed canary is restored: both downtimes charged, the escalation stays armed', () => {
  const s = armed();
  const r = run();
  canaryStarted(s, r, 900_000, T0);
  r.result = { outcome: 'failed', reason: 'KV cache too small', downtimeMs: null, measuredVramMb: null };
  // Never healthy: the canary's downtime is all the time it took.
  const failed = canaryFailed(s, r, null, T0 + 50_000);
  assert.deepEqual(failed, { reason: 'KV cache too small', canaryDowntimeMs: 50_000 });
  const release = canaryRestored(s, r, failed, 30_000, false, T0 + 80_000);
  assert.equal(release.downtimeMs, 80_000);
  assert.equal(release.outcome, 'restored');
  assert.equal(s.lastCanary?.outcome, 'restored');
  assert.notEqual(s.armedAt, null);
  assert.equal(s.counters.canaryDowntime.count, 1);
  assert.equal(s.counters.canaryDowntime.sumMs, 50_000, 'the histogram counts the canary, not the restore');
});

test('a failed restore latches: the release carries the failure, the record both reasons', () => {
  const s = armed();
  const r = run();
  canaryStarted(s, r, 900_000, T0);
  const failed = canaryFailed(s, r, 'worker lost', T0 + 10_000);
  const release = restoreFailed(s, r, failed, 'restart exited 1', 5_000, 'gpu-1', T0 + 15_000);
  assert.equal(release.outcome, 'restore_failed');
  assert.equal(release.restoreFailure, 'restart exited 1');
  assert.equal(release.downtimeMs, 15_000);
  assert.equal(s.lastCanary?.reason, 'worker lost; restore failed: restart exited 1');
  // Canaries stop on gpu-1 until an operator acknowledges (healctl ack gpu-1).
  assert.equal(s.decisions.at(-1)?.code, 'restore_failed');
  assert.deepEqual(decisionsOf(s, 'restore_failed')[0]?.params, {
    failure: 'restart exited 1',
    host: 'gpu-1',
  });
});
