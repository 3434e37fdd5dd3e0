// The escalation is owed its window (issue 13, point 5), at the seed's default settings — threshold 3 in
// 24 h, flag TTL 4 h, window 03:00-07:00 UTC, 60 s budget — on the time-skipping server: OOMs at noon get
// that night's canary; a night burst gets the 03:00 window; an escalation whose window was refused (paused
// host, budget too small) is recorded as a missed window when the window closes, and then lapses as stale.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostCoordinatorWorkflowId } from '../../src/domain/identifiers.js';
import { pauseHostUpdate } from '../../src/workflows/host-coordinator-messages.js';
import { HostCoordinatorWorkflow } from '../../src/workflows/host-coordinator-workflow.js';
import { hostTaskQueue } from '../../src/domain/identifiers.js';
import { WithStartWorkflowOperation } from '@temporalio/client';
import { freshHosts } from '../support/fresh-host.js';
import { type ScriptedGpu, scriptedGpu } from '../support/scripted-gpu.js';
import {
  decisionsOf,
  eventually,
  healingState,
  hostRefusal,
  skipToUtc,
  symptom,
  testPolicy,
} from '../support/healing-harness.js';

const HOUR = 3600_000;
const MINUTE = 60_000;
const hosts = freshHosts('owed');
/** The seed's defaults: only what the time-skipping harness needs differs (UTC, no predict interval, no soak). */
const DEFAULTS = testPolicy();
const withHost = (gpu: ScriptedGpu, body: (host: string) => Promise<void>) =>
  hosts.withHost(DEFAULTS, gpu, body);

const canaryStarts = (gpu: ScriptedGpu) => gpu.journal.filter((e) => e.action === 'canary:start');

/** Three OOMs, `gapMs` apart, starting at the next hh:00 UTC. */
async function burst(host: string, hour: number, gapMs: number): Promise<number> {
  const first = await skipToUtc(hosts.env, hour);
  for (let i = 0; i < 3; i++) {
    if (i > 0) await hosts.env.sleep(gapMs);
    await symptom(hosts.env.client, host, 'vllm_oom', { id: `burst-${hour}-${i}` });
  }
  return first;
}

test('defaults: OOMs at 10:00, 12:00 and 14:00 arm the flag, which lives to the 03:00 window, where the canary runs', async () => {
  const gpu = scriptedGpu();
  await withHost(gpu, async (host) => {
    await burst(host, 10, 2 * HOUR);
    const armed = await healingState(hosts.env.client, host);
    assert.equal(armed.armed, true);
    assert.match(armed.flagExpiresAt ?? '', /T07:00:00\.000Z$/, 'not before the owed window closes');
    await skipToUtc(hosts.env, 18, 1); // TTL passed 4 h after the last OOM: still armed, tonight's window is owed
    const evening = await healingState(hosts.env.client, host);
    assert.equal(evening.armed, true, 'the TTL must not cancel tonight’s canary');
    assert.equal(decisionsOf(evening, 'escalation_lapsed').length, 0);
    await skipToUtc(hosts.env, 3, 1);
    const done = await eventually('promoted', async () => {
      const s = await healingState(hosts.env.client, host);
      return s.lastCanary?.outcome === 'promoted' ? s : undefined;
    });
    assert.equal(canaryStarts(gpu).length, 1);
    assert.equal(done.counters.missedWindows ?? 0, 0);
  });
});

test('defaults: OOMs at 23:00, 23:30 and 00:00 get the 03:00 window', async () => {
  const gpu = scriptedGpu();
  await withHost(gpu, async (host) => {
    await burst(host, 23, 30 * MINUTE);
    await skipToUtc(hosts.env, 2, 59);
    assert.equal(canaryStarts(gpu).length, 0, 'nothing before the window');
    await hosts.env.sleep(2 * MINUTE);
    await eventually(
      'promoted',
      async () => (await healingState(hosts.env.client, host)).lastCanary?.outcome === 'promoted',
    );
  });
});

test('defaults: a burst a week ago whose window was refused (host paused) is a missed window, then lapses; no canary since', async () => {
  const gpu = scriptedGpu();
  await withHost(gpu, async (host) => {
    await hosts.env.client.workflow.executeUpdateWithStart(pauseHostUpdate, {
      args: [{ by: 'tester', reason: 'driver update' }],
      startWorkflowOperation: new WithStartWorkflowOperation(HostCoordinatorWorkflow, {
        workflowId: hostCoordinatorWorkflowId(host),
        taskQueue: hostTaskQueue(host),
        args: [{ host }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    });
    await burst(host, 10, 2 * HOUR);
    const sevenOhOne = await skipToUtc(hosts.env, 7, 1); // the owed window opened at 03:00 (refused: paused) and closed at 07:00
    const after = await eventually('window missed', async () => {
      const s = await healingState(hosts.env.client, host);
      return decisionsOf(s, 'window_missed').length > 0 ? s : undefined;
    });
    assert.equal(after.counters.missedWindows, 1);
    // Armed through the window 03:00-07:00 UTC and no canary ran; the last refusal: the host was paused.
    const missed = decisionsOf(after, 'window_missed')[0]!.params;
    assert.deepEqual(
      [missed.opensAt, missed.closesAt, missed.tz, missed.lastRefusalCode, missed.lastHostRefusal],
      [sevenOhOne - MINUTE - 4 * HOUR, sevenOhOne - MINUTE, 'UTC', 'canary_refused_by_host', 'paused'],
    );
    assert.equal(after.armed, false, 'stale: no symptom for the TTL, and its window has passed');
    assert.equal(decisionsOf(after, 'escalation_lapsed').length, 1);
    await hosts.env.sleep(7 * 24 * HOUR);
    const week = await healingState(hosts.env.client, host);
    assert.equal(week.armed, false);
    assert.equal(week.counters.missedWindows, 1, 'a lapsed escalation misses no more windows');
    assert.equal(canaryStarts(gpu).length, 0);
  });
});

test('defaults: a window refused for budget (predicted 90 s > 60 s) is recorded as missed when it closes', async () => {
  const gpu = scriptedGpu({ predictedDowntimeMs: 90_000 });
  await withHost(gpu, async (host) => {
    await burst(host, 10, 2 * HOUR);
    await skipToUtc(hosts.env, 3, 1);
    const refused = await hostRefusal(hosts.env.client, host, 'budget');
    assert.equal(
      refused.hostFigures?.budgetLeftMs,
      60_000,
      'a minute of budget, less than the 90 s predicted',
    );
    await skipToUtc(hosts.env, 7, 1);
    const closed = await eventually('window missed', async () => {
      const s = await healingState(hosts.env.client, host);
      return (s.counters.missedWindows ?? 0) > 0 ? s : undefined;
    });
    assert.equal(closed.counters.missedWindows, 1);
    assert.equal(closed.armed, false);
    assert.equal(canaryStarts(gpu).length, 0);
  });
});
