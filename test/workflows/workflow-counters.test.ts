// The totals the workflows carry for the metrics (docs/metrics.md), on Temporal's time-skipping test
// server: canary outcomes and downtimes, refusals by reason, overrun — and all of it carried through
// continue-as-new under the same first run id, so the exporter neither loses nor double-counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshHosts } from '../support/fresh-host.js';
import { scriptedGpu } from '../support/scripted-gpu.js';
import {
  eventually,
  healingState,
  hostState,
  skipToUtc,
  symptom,
  testPolicy,
} from '../support/healing-harness.js';

const hosts = freshHosts('counters');
const withHost = hosts.withHost.bind(hosts);

async function threeSymptoms(host: string, kind = 'vllm_oom') {
  for (let i = 0; i < 3; i++) await symptom(hosts.env.client, host, kind);
}

test('a promoted canary is counted once with its downtime; the cooldown refusal counts as a lease wait', async () => {
  const gpu = scriptedGpu();
  await withHost(
    testPolicy({ maintenanceWindow: '00:00-23:59', escalationFlagTtlSeconds: 0 }),
    gpu,
    async (host) => {
      await skipToUtc(hosts.env, 1);
      await threeSymptoms(host);
      const promoted = await eventually('a promoted canary', async () => {
        const s = await healingState(hosts.env.client, host);
        return s.lastCanary?.outcome === 'promoted' ? s : undefined;
      });
      assert.deepEqual(promoted.counters.canaryRuns, { 'promoted|canary': 1 });
      assert.equal(promoted.counters.canaryDowntime.count, 1);
      assert.equal(promoted.counters.canaryDowntime.sumMs, promoted.lastCanary!.downtimeMs);
      // 15 s: the 15 s bucket (index 4 of 1, 2.5, 5, 10, 15, …).
      assert.equal(promoted.counters.canaryDowntime.counts[4], 1);
      assert.equal(promoted.totals.counted, 3);

      await threeSymptoms(host);
      const host1 = await eventually('the cooldown refusal', async () => {
        const h = await hostState(hosts.env.client, host);
        return (h.counters.leaseRefusals.cooldown ?? 0) > 0 ? h : undefined;
      });
      assert.deepEqual(host1.counters.leaseRefusals, { cooldown: 1 });
      assert.equal(host1.counters.overrunMs, 0);
      const after = await healingState(hosts.env.client, host);
      assert.deepEqual(after.counters.canaryRuns, { 'promoted|canary': 1 }, 'a refusal is not a canary');
      assert.equal(after.totals.counted, 6, 'a promotion forgets the 24 h count, not the total');
    },
  );
});

test('a failed restore: counted as restore_failed, its overrun carried; the latch refusal is not a wait', async () => {
  const gpu = scriptedGpu({ canaryScripts: ['throw'], restoreScripts: ['fail'] });
  const policy = testPolicy({
    maintenanceWindow: '00:00-23:59',
    escalationFlagTtlSeconds: 0,
    cooldownHours: 0,
    // A second healable kind beside vllm_oom (docs/kinds.md): both ask the same host for canaries.
    kindActions: { kv_cache: 'heal' },
  });
  await withHost(policy, gpu, async (host) => {
    await skipToUtc(hosts.env, 1);
    await threeSymptoms(host);
    const failed = await eventually('restore failed', async () => {
      const s = await healingState(hosts.env.client, host);
      return s.lastCanary?.outcome === 'restore_failed' ? s : undefined;
    });
    assert.deepEqual(failed.counters.canaryRuns, { 'restore_failed|canary': 1 });
    assert.equal(failed.counters.canaryDowntime.count, 1);
    const latched = await eventually('latched', async () => {
      const h = await hostState(hosts.env.client, host);
      return h.restoreFailure ? h : undefined;
    });
    assert.equal(latched.counters.overrunMs, latched.ledger.overrunMs, 'the window’s overrun, carried');
    await threeSymptoms(host, 'kv_cache');
    const refused = await eventually('refused by the latch', async () => {
      const h = await hostState(hosts.env.client, host);
      return h.counters.leaseRefusals.restore_failure_latched ? h : undefined;
    });
    assert.deepEqual(refused.counters.leaseRefusals, { restore_failure_latched: 1 });
  });
});

test('a refusal for the budget is counted by the coordinator that decided it, not again by the workflow', async () => {
  const gpu = scriptedGpu({ predictedDowntimeMs: 90_000 });
  await withHost(
    testPolicy({ maintenanceWindow: '00:00-23:59', escalationFlagTtlSeconds: 0 }),
    gpu,
    async (host) => {
      await skipToUtc(hosts.env, 1);
      await threeSymptoms(host);
      const h = await eventually('the budget refusal', async () => {
        const x = await hostState(hosts.env.client, host);
        return x.counters.leaseRefusals.budget ? x : undefined;
      });
      assert.equal(h.counters.leaseRefusals.budget, 1);
      const s = await healingState(hosts.env.client, host);
      assert.deepEqual(s.counters.refused, {}, 'the coordinator’s refusal is counted there only');
    },
  );
});

test('continue-as-new carries every total under the same first run id', async () => {
  const gpu = scriptedGpu();
  // Closed window, a small history limit: 60 symptoms force several continue-as-new.
  const policy = testPolicy({ maintenanceWindow: '03:00-04:00', historyEventsLimit: 200 });
  await withHost(policy, gpu, async (host) => {
    await skipToUtc(hosts.env, 5);
    const first =
      (await symptom(hosts.env.client, host, 'vllm_oom', { id: 'can-0' })) &&
      (await healingState(hosts.env.client, host));
    for (let i = 1; i < 60; i++) await symptom(hosts.env.client, host, 'vllm_oom', { id: `can-${i}` });
    await symptom(hosts.env.client, host, 'vllm_oom', { id: 'can-5' }); // a redelivery
    const s = await eventually('a later run', async () => {
      const x = await healingState(hosts.env.client, host);
      return x.runs > 1 ? x : undefined;
    });
    assert.equal(s.firstRunId, first.firstRunId);
    assert.equal(s.totals.counted, 60);
    assert.equal(s.totals.duplicates, 1);
    console.log(`60 symptoms: run ${s.runs}, first run id kept`);
  });
});
