// HealingWorkflow and HostCoordinatorWorkflow on Temporal's time-skipping test server, with the real
// durations of the design: hours are skipped, never shortened.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { healingWorkflowId, hostCoordinatorWorkflowId } from '../../src/domain/identifiers.js';
import type { BudgetReport } from '../../src/activities/types.js';
import { signalSymptom } from '../../src/temporal/symptoms.js';
import {
  clearEscalationUpdate,
  forceEscalationUpdate,
  recordSymptomUpdate,
  symptomSignal,
} from '../../src/workflows/healing-messages.js';
import {
  acknowledgeRestoreFailureUpdate,
  pauseHostUpdate,
  resumeHostUpdate,
} from '../../src/workflows/host-coordinator-messages.js';
import { freshHosts } from '../support/fresh-host.js';
import { type ScriptedGpu, scriptedGpu } from '../support/scripted-gpu.js';
import {
  decisionsOf,
  eventually,
  healingState,
  hostRefusal,
  hostState,
  skipTo,
  skipToUtc,
  symptom,
  testPolicy,
} from '../support/healing-harness.js';

const HOUR = 3600_000;
const MINUTE = 60_000;

// Each test gets a server of its own: workflows a finished test leaves behind (and their workers'
// shutdown) must not stall the next test's time skipping.
const hosts = freshHosts('gpu');
const withHost = hosts.withHost.bind(hosts);

/** The threshold's worth of symptoms, one after the other. */
async function threeSymptoms(host: string, kind = 'vllm_oom'): Promise<void> {
  for (let i = 0; i < 3; i++) await symptom(hosts.env.client, host, kind);
}

const canaryStarts = (gpu: ScriptedGpu, host: string) =>
  gpu.journal.filter((e) => e.host === host && e.action === 'canary:start');

describe('rolling 24 h count and the escalation flag', () => {
  test('3 symptoms within 23 h arm the flag', async () => {
    const gpu = scriptedGpu();
    await withHost(testPolicy({ escalationFlagTtlSeconds: 0 }), gpu, async (host) => {
      assert.equal((await symptom(hosts.env.client, host)).count24h, 1);
      await hosts.env.sleep(11.5 * HOUR);
      assert.equal((await symptom(hosts.env.client, host)).armed, false);
      await hosts.env.sleep(11.5 * HOUR);
      const third = await symptom(hosts.env.client, host);
      assert.equal(third.count24h, 3);
      assert.equal(third.threshold, 3);
      assert.equal(third.armed, true);
      assert.equal(third.mode, 'canary');
      const state = await healingState(hosts.env.client, host);
      assert.equal(state.armed, true);
      const armed = decisionsOf(state, 'escalation_armed');
      assert.equal(armed.length, 1);
      assert.deepEqual(armed[0]!.params, { count: 3, threshold: 3, alertOnly: null });
    });
  });

  test('3 symptoms spread over 25 h do not arm it', async () => {
    const gpu = scriptedGpu();
    await withHost(testPolicy(), gpu, async (host) => {
      await symptom(hosts.env.client, host);
      await hosts.env.sleep(12.5 * HOUR);
      await symptom(hosts.env.client, host);
      await hosts.env.sleep(12.5 * HOUR);
      const third = await symptom(hosts.env.client, host);
      assert.equal(third.count24h, 2, 'the first symptom left the window after 24 h');
      assert.equal(third.armed, false);
      assert.equal(third.mode, 'predictive');
    });
  });

  test('event times place symptoms in the window; stale ones are ignored, future ones rejected', async () => {
    const gpu = scriptedGpu();
    await withHost(testPolicy(), gpu, async (host) => {
      const now = await hosts.env.currentTimeMs();
      const stale = await symptom(hosts.env.client, host, 'vllm_oom', {
        eventTime: new Date(now - 25 * HOUR).toISOString(),
      });
      assert.equal(stale.outcome, 'stale');
      assert.equal(stale.count24h, 0);
      const old = await symptom(hosts.env.client, host, 'vllm_oom', { eventTime: now - 23 * HOUR });
      assert.equal(old.outcome, 'counted');
      await hosts.env.sleep(1.5 * HOUR);
      assert.equal(
        (await healingState(hosts.env.client, host)).count24h,
        0,
        'counted by event time, so it left after 24 h of event time',
      );
      await assert.rejects(
        symptom(hosts.env.client, host, 'vllm_oom', { eventTime: new Date(now + 3 * HOUR).toISOString() }),
        (err: unknown) =>
          err instanceof WorkflowUpdateFailedError &&
          /eventTime: .* in the future/.test(String(err.cause?.message)),
      );
    });
  });

  test('the same idempotency id counts once, by update and by signal', async () => {
    const gpu = scriptedGpu();
    await withHost(testPolicy(), gpu, async (host) => {
      assert.equal((await symptom(hosts.env.client, host, 'vllm_oom', { id: 'log:42' })).outcome, 'counted');
      // Redelivered through the client helper: a new update, answered as a duplicate with today's count.
      const redelivered = await symptom(hosts.env.client, host, 'vllm_oom', { id: 'log:42' });
      assert.equal(redelivered.outcome, 'duplicate');
      assert.equal(redelivered.count24h, 1);
      // Sent again under another update id: the workflow's own idempotency catches it.
      const handle = hosts.env.client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
      const again = await handle.executeUpdate(recordSymptomUpdate, {
        args: [{ kind: 'vllm_oom', id: 'log:42' }],
      });
      assert.equal(again.outcome, 'duplicate');
      assert.equal(again.count24h, 1);
      await signalSymptom(hosts.env.client, host, { kind: 'vllm_oom', id: 'log:43' });
      await signalSymptom(hosts.env.client, host, { kind: 'vllm_oom', id: 'log:43' });
      const state = await eventually('both signals handled', async () => {
        const s = await healingState(hosts.env.client, host);
        return s.totals.duplicates === 3 ? s : undefined;
      });
      assert.equal(state.count24h, 2);
      assert.equal(state.totals.counted, 2);
    });
  });

  test('malformed payloads are rejected with the bad field named, and the workflow keeps working', async () => {
    const gpu = scriptedGpu();
    await withHost(testPolicy(), gpu, async (host) => {
      await symptom(hosts.env.client, host);
      const handle = hosts.env.client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
      const bad: [unknown, RegExp][] = [
        [{ kind: 'vllm_oom', details: { deficitMb: -5 } }, /details\.deficitMb: expected a size ≥ 0 MiB/],
        [{ kind: 'vllm_oom', details: { deficitMb: 'lots' } }, /details\.deficitMb/],
        [{ kind: 'vllm_oom', colour: 'red' }, /unknown field\(s\) "colour"/],
        [{ kind: '../etc' }, /kind: expected a symptom kind/],
        [{ kind: 'other_kind' }, /kind: this workflow heals "vllm_oom"/],
        [{ kind: 'vllm_oom', eventTime: 'yesterday' }, /eventTime/],
        [{ kind: 'vllm_oom', id: 'a\u001b[31m' }, /id: control characters are not allowed/],
        ['not even an object', /payload/],
      ];
      for (const [payload, message] of bad) {
        await assert.rejects(
          handle.executeUpdate(recordSymptomUpdate, { args: [payload as never] }),
          (err: unknown) => {
            assert.ok(err instanceof WorkflowUpdateFailedError);
            assert.match(String(err.cause?.message), message);
            return true;
          },
        );
        await handle.signal(symptomSignal, payload as never);
      }
      const ok = await symptom(hosts.env.client, host);
      assert.equal(ok.count24h, 2, 'rejections changed nothing; the workflow still counts');
      const state = await eventually('signals recorded as rejected', async () => {
        const s = await healingState(hosts.env.client, host);
        return s.totals.rejected === bad.length ? s : undefined;
      });
      const rejected = decisionsOf(state, 'message_rejected').filter((d) => d.params.message === 'symptom');
      assert.ok(rejected.length >= 1);
      assert.match(rejected.map((d) => d.params.problem).join('\n'), /details\.deficitMb/);
      const { status } = await handle.describe();
      assert.equal(status.name, 'RUNNING');
    });
  });

  test('a flag lapses TTL after the last symptom once its owed window has passed, and stays lapsed', async () => {
    // The canary is refused at the window (predicted 90 s > the 60 s budget), so nothing clears the flag.
    const gpu = scriptedGpu({ predictedDowntimeMs: 90_000 });
    await withHost(testPolicy({ escalationFlagTtlSeconds: 3 * 3600 }), gpu, async (host) => {
      const elevenPm = await skipToUtc(hosts.env, 23);
      for (const id of ['a', 'b', 'c']) await symptom(hosts.env.client, host, 'vllm_oom', { id });
      assert.equal((await healingState(hosts.env.client, host)).armed, true);
      await hosts.env.sleep(3 * HOUR + MINUTE); // 02:01: the TTL has passed, but the 03:00 window is owed
      assert.equal((await healingState(hosts.env.client, host)).armed, true, 'not before its window');
      await skipToUtc(hosts.env, 7, 1); // the window was refused (budget) and has closed: stale now
      const state = await eventually('lapsed', async () => {
        const s = await healingState(hosts.env.client, host);
        return s.armed ? undefined : s;
      });
      assert.equal(state.mode, 'predictive');
      const lapsed = decisionsOf(state, 'escalation_lapsed')[0];
      assert.ok(lapsed);
      // No symptom since 23:00, TTL 3 h.
      const { lastSymptomAt, tz, ttlMs } = lapsed.params;
      assert.ok(
        lastSymptomAt !== null && lastSymptomAt >= elevenPm && lastSymptomAt < elevenPm + MINUTE,
        `last symptom at ${lastSymptomAt === null ? 'none' : new Date(lastSymptomAt).toISOString()}, expected 23:00`,
      );
      assert.deepEqual([tz, ttlMs], ['UTC', 3 * HOUR]);
      assert.equal(state.counters.missedWindows, 1);
      // The 3 old symptoms may still be in the window, but only a new one may arm it again: neither
      // redeliveries nor time passing do.
      const handle = hosts.env.client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
      for (const id of ['a', 'b', 'c']) {
        const again = await handle.executeUpdate(recordSymptomUpdate, { args: [{ kind: 'vllm_oom', id }] });
        assert.equal(again.outcome, 'duplicate');
        assert.equal(again.armed, false);
      }
      await hosts.env.sleep(2 * HOUR);
      assert.equal(canaryStarts(gpu, host).length, 0, 'no canary for a lapsed escalation');
      const after = await healingState(hosts.env.client, host);
      assert.equal(after.armed, false);
      assert.equal(after.totals.duplicates, 3);
      assert.equal(decisionsOf(after, 'escalation_armed').length, 1);
    });
  });
});

describe('maintenance window', () => {
  test('an escalation at 23:00 sleeps until 03:00 and not a minute less', async () => {
    const gpu = scriptedGpu();
    await withHost(testPolicy({ escalationFlagTtlSeconds: 0 }), gpu, async (host) => {
      const elevenPm = await skipToUtc(hosts.env, 23);
      await threeSymptoms(host);
      const waiting = await eventually('waiting for the window', async () => {
        const s = await healingState(hosts.env.client, host);
        return s.phase === 'waiting_for_window' ? s : undefined;
      });
      assert.match(waiting.next, /window opens 03:00 UTC, in (4 h|3 h 59 m)$/);
      await hosts.env.sleep(4 * HOUR - MINUTE); // 02:59
      assert.equal(canaryStarts(gpu, host).length, 0, 'nothing before the window opens');
      await hosts.env.sleep(2 * MINUTE);
      const done = await eventually('promoted', async () => {
        const s = await healingState(hosts.env.client, host);
        return s.lastCanary?.outcome === 'promoted' ? s : undefined;
      });
      const started = decisionsOf(done, 'canary_started')[0];
      assert.ok(started);
      assert.ok(
        started.at >= elevenPm + 4 * HOUR,
        `canary at ${new Date(started.at).toISOString()} is not before 03:00`,
      );
      assert.ok(started.at < elevenPm + 4 * HOUR + MINUTE, 'and it starts as the window opens');
      assert.equal(done.armed, false, 'promotion clears the flag');
      assert.equal(done.mode, 'predictive');
      assert.equal(done.count24h, 0);
    });
  });

  test('a 22:00-02:00 window: inside it (after midnight) the canary runs at once; after it, the next night', async () => {
    const gpu = scriptedGpu();
    const policy = testPolicy({
      maintenanceWindow: '22:00-02:00',
      escalationFlagTtlSeconds: 0,
      cooldownHours: 0,
    });
    await withHost(policy, gpu, async (host) => {
      const oneThirty = await skipToUtc(hosts.env, 1, 30);
      await threeSymptoms(host);
      const first = await eventually('first canary', async () => {
        const s = await healingState(hosts.env.client, host);
        return s.lastCanary ? s : undefined;
      });
      assert.ok((decisionsOf(first, 'canary_started')[0]?.at ?? 0) < oneThirty + MINUTE);
      await skipToUtc(hosts.env, 2, 30);
      await threeSymptoms(host);
      await hosts.env.sleep(19 * HOUR + 29 * MINUTE); // 21:59
      assert.equal(canaryStarts(gpu, host).length, 1);
      await hosts.env.sleep(2 * MINUTE);
      await eventually('second canary at 22:00', async () => canaryStarts(gpu, host).length === 2);
    });
  });

  for (const change of ['spring', 'autumn'] as const) {
    test(`Europe/Berlin on the ${change} DST day: 23:00 → 03:00 local is ${change === 'spring' ? 3 : 5} h`, async () => {
      const gpu = scriptedGpu();
      const policy = testPolicy({ maintenanceTimeZone: 'Europe/Berlin', escalationFlagTtlSeconds: 0 });
      await withHost(policy, gpu, async (host) => {
        const now = await hosts.env.currentTimeMs();
        const sunday = nextDstSunday(now, change === 'spring' ? 2 : 9); // March or October (0-based)
        // Saturday 23:00 local: CET (UTC+1) before the spring change, CEST (UTC+2) before the autumn one.
        const saturday2300 = sunday - (change === 'spring' ? 2 : 3) * HOUR;
        const opening = sunday + (change === 'spring' ? 1 : 2) * HOUR; // 03:00 CEST = 01:00Z; 03:00 CET = 02:00Z
        await skipTo(hosts.env, saturday2300);
        await threeSymptoms(host);
        await hosts.env.sleep(opening - saturday2300 - MINUTE);
        assert.equal(canaryStarts(gpu, host).length, 0);
        await hosts.env.sleep(2 * MINUTE);
        const done = await eventually('canary at 03:00 local', async () => {
          const s = await healingState(hosts.env.client, host);
          return s.lastCanary ? s : undefined;
        });
        const at = decisionsOf(done, 'canary_started')[0]?.at ?? 0;
        assert.ok(
          at >= opening && at < opening + MINUTE,
          `canary at ${new Date(at).toISOString()}, expected ${new Date(opening).toISOString()}`,
        );
      });
    });
  }
});

describe('host budget, cooldown and one canary at a time', () => {
  test('a candidate whose predicted downtime exceeds the budget is refused with its reason', async () => {
    const gpu = scriptedGpu({ predictedDowntimeMs: 90_000 });
    await withHost(
      testPolicy({ maintenanceWindow: '00:00-23:59', escalationFlagTtlSeconds: 0 }),
      gpu,
      async (host) => {
        await skipToUtc(hosts.env, 1);
        await threeSymptoms(host);
        const state = await hostRefusal(hosts.env.client, host, 'budget');
        assert.equal(
          state.hostFigures?.budgetLeftMs,
          60_000,
          'a minute of budget, less than the 90 s predicted',
        );
        assert.equal(canaryStarts(gpu, host).length, 0);
        assert.equal(state.armed, true, 'still escalated: it tries again at the next window');
        assert.equal(state.phase, 'waiting_for_window');
      },
    );
  });

  test('the cooldown blocks a second canary on the host for 6 h', async () => {
    const gpu = scriptedGpu();
    await withHost(
      testPolicy({ maintenanceWindow: '00:00-23:59', escalationFlagTtlSeconds: 0 }),
      gpu,
      async (host) => {
        await skipToUtc(hosts.env, 1);
        await threeSymptoms(host);
        const first = await eventually(
          'first canary',
          async () => (await healingState(hosts.env.client, host)).lastCanary ?? undefined,
        );
        await threeSymptoms(host);
        const refused = await hostRefusal(hosts.env.client, host, 'cooldown');
        const cooldownLeft = (refused.hostFigures?.cooldownUntil ?? 0) - (refused.hostFigures?.asOf ?? 0);
        assert.ok(cooldownLeft > 5 * HOUR && cooldownLeft <= 6 * HOUR, `cooldown left ${cooldownLeft} ms`);
        await hosts.env.sleep(6 * HOUR - 2 * MINUTE);
        assert.equal(canaryStarts(gpu, host).length, 1);
        await hosts.env.sleep(3 * MINUTE);
        const second = await eventually('second canary after the cooldown', async () => {
          const s = await healingState(hosts.env.client, host);
          return decisionsOf(s, 'canary_started').length === 2 ? s : undefined;
        });
        const at = decisionsOf(second, 'canary_started')[1]?.at ?? 0;
        assert.ok(at >= first.at + 6 * HOUR, 'not before the cooldown is over');
      },
    );
  });

  test('two kinds on one host never overlap, and each is charged to the same budget', async () => {
    const gpu = scriptedGpu({ canaryScripts: ['slow', 'slow'] });
    const policy = testPolicy({
      maintenanceWindow: '00:00-23:59',
      escalationFlagTtlSeconds: 0,
      cooldownHours: 0,
      // A second healable kind beside vllm_oom (docs/kinds.md): both ask the same host for canaries.
      kindActions: { kv_cache: 'heal' },
    });
    await withHost(policy, gpu, async (host) => {
      await skipToUtc(hosts.env, 1);
      await Promise.all(
        ['vllm_oom', 'kv_cache'].flatMap((kind) =>
          [1, 2, 3].map(() => symptom(hosts.env.client, host, kind)),
        ),
      );
      // The second kind is told "busy" and asks again a minute later (workflow time): move the clock.
      for (let i = 0; i < 10; i++) {
        const [a, b] = await Promise.all([
          healingState(hosts.env.client, host, 'vllm_oom'),
          healingState(hosts.env.client, host, 'kv_cache'),
        ]);
        if (a.lastCanary && b.lastCanary) break;
        await hosts.env.sleep(2 * MINUTE);
      }
      const [a, b] = await Promise.all([
        healingState(hosts.env.client, host, 'vllm_oom'),
        healingState(hosts.env.client, host, 'kv_cache'),
      ]);
      assert.equal(a.lastCanary?.outcome, 'promoted');
      assert.equal(b.lastCanary?.outcome, 'promoted');
      const busy = decisionsOf([...a.decisions, ...b.decisions], 'canary_refused_by_host');
      assert.equal(busy[0]?.params.refusal, 'busy');
      assert.equal(gpu.maxConcurrentPerHost, 1, 'never two canaries at once on one host');
      const coordinator = await hostState(hosts.env.client, host);
      assert.ok(coordinator.counters.leaseRefusals.busy, 'refused as busy');
      assert.equal(coordinator.budgetSpentMs, 2 * gpu.canaryDowntimeMs);
      assert.equal(coordinator.lease, null);
    });
  });

  test('a failed canary is restored, and the budget is charged for both restarts', async () => {
    const gpu = scriptedGpu({ canaryScripts: ['fail'] });
    await withHost(
      testPolicy({ maintenanceWindow: '00:00-23:59', escalationFlagTtlSeconds: 0 }),
      gpu,
      async (host) => {
        await skipToUtc(hosts.env, 1);
        await threeSymptoms(host);
        const state = await eventually('restored', async () => {
          const s = await healingState(hosts.env.client, host);
          return s.lastCanary?.outcome === 'restored' ? s : undefined;
        });
        assert.deepEqual(
          gpu.journal.filter((e) => e.host === host).map((e) => e.action),
          ['canary:start', 'canary:end', 'restore:start', 'restore:end'],
        );
        assert.equal(state.lastCanary?.downtimeMs, gpu.canaryDowntimeMs + gpu.restoreDowntimeMs);
        assert.equal(state.armed, true, 'still escalated after a failed attempt');
        assert.equal(state.attempts, 1);
        const coordinator = await eventually('release charged', async () => {
          const h = await hostState(hosts.env.client, host);
          return h.lease === null && h.budgetSpentMs > 0 ? h : undefined;
        });
        assert.equal(coordinator.budgetSpentMs, gpu.canaryDowntimeMs + gpu.restoreDowntimeMs);
        assert.ok(coordinator.cooldownLeftMs > 5.9 * HOUR);
        // The coordinator charges the release, then reports it to the audit log by an activity: the
        // query can answer before the line is written.
        const record = await eventually('the release in the audit log', async () => {
          const audit = await readFile(join(hosts.auditDir, `budget-${host}.jsonl`), 'utf8');
          return JSON.parse(audit.trim().split('\n').pop() as string) as BudgetReport;
        });
        assert.equal(record.event.outcome, 'restored');
        assert.equal(record.budgetSpentMs, gpu.canaryDowntimeMs + gpu.restoreDowntimeMs);
        assert.deepEqual(record.event.canary, {
          candidateId: 'gpu_memory_utilization=0.85',
          changes: { 'gpu-memory-utilization': 0.85 },
          reason: 'probe request failed: CUDA out of memory',
          canaryDowntimeMs: gpu.canaryDowntimeMs,
          restoreDowntimeMs: gpu.restoreDowntimeMs,
          measuredVramMb: 80_100,
        });
      },
    );
  });

  test('cancelling the workflow mid-canary still restores the service and releases the lease', async () => {
    const gpu = scriptedGpu({ canaryScripts: ['hang'] });
    await withHost(
      testPolicy({ maintenanceWindow: '00:00-23:59', escalationFlagTtlSeconds: 0 }),
      gpu,
      async (host) => {
        await skipToUtc(hosts.env, 1);
        await threeSymptoms(host);
        const handle = hosts.env.client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
        await eventually(
          'canary running',
          async () => (await healingState(hosts.env.client, host)).phase === 'canary_running',
        );
        await handle.cancel();
        await assert.rejects(handle.result(), /cancel/i);
        const actions = gpu.journal.filter((e) => e.host === host).map((e) => e.action);
        assert.deepEqual(
          actions,
          ['canary:start', 'canary:end', 'restore:start', 'restore:end'],
          'restore only after the canary stopped',
        );
        const coordinator = await eventually('lease released', async () => {
          const h = await hostState(hosts.env.client, host);
          return h.lease === null ? h : undefined;
        });
        assert.equal(
          decisionsOf(coordinator, 'lease_released').filter((d) => d.params.outcome === 'restored').length,
          1,
        );
      },
    );
  });

  test('a failed restore latches the host until an operator acknowledges it', async () => {
    const gpu = scriptedGpu({ canaryScripts: ['throw', 'pass'], restoreScripts: ['fail'] });
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
      assert.match(failed.lastCanary?.reason ?? '', /service did not come up.*restore failed: .*stays down/);
      const latched = await eventually(
        'latched',
        async () => (await hostState(hosts.env.client, host)).restoreFailure ?? undefined,
      );
      assert.equal(latched.kind, 'vllm_oom');
      // Another kind on the same host is refused while the latch holds.
      await threeSymptoms(host, 'kv_cache');
      const refused = await eventually('refused by the latch', async () => {
        const s = await healingState(hosts.env.client, host, 'kv_cache');
        return decisionsOf(s, 'canary_refused_by_host')[0];
      });
      assert.ok((await hostState(hosts.env.client, host)).counters.leaseRefusals.restore_failure_latched);
      assert.equal(refused.params.refusal, 'restore_failure_latched');
      const coordinator = hosts.env.client.workflow.getHandle(hostCoordinatorWorkflowId(host));
      const acked = await coordinator.executeUpdate(acknowledgeRestoreFailureUpdate, {
        args: [{ by: 'alice', reason: 'service fixed by hand' }],
      });
      assert.equal(acked.restoreFailure, null);
      await hosts.env.sleep(24 * HOUR);
      await eventually('canary after the acknowledgement', async () => {
        const s = await healingState(hosts.env.client, host, 'kv_cache');
        return s.lastCanary?.outcome === 'promoted' ? s : undefined;
      });
    });
  });

  test('a paused host refuses canaries until resumed', async () => {
    const gpu = scriptedGpu();
    await withHost(
      testPolicy({ maintenanceWindow: '00:00-23:59', escalationFlagTtlSeconds: 0 }),
      gpu,
      async (host) => {
        await skipToUtc(hosts.env, 1);
        await symptom(hosts.env.client, host); // starts the healing workflow
        // The coordinator exists from the first lease request on; force one so it can be paused first.
        const healing = hosts.env.client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
        await hosts.env.client.workflow.signalWithStart('HostCoordinatorWorkflow', {
          workflowId: hostCoordinatorWorkflowId(host),
          taskQueue: `kloros-healing.${host}`,
          args: [{ host }],
          signal: 'requestLease',
          signalArgs: [
            { requestId: 'warm-up', holderWorkflowId: 'nobody', kind: 'none', predictedDowntimeMs: 1 },
          ],
        });
        const coordinator = hosts.env.client.workflow.getHandle(hostCoordinatorWorkflowId(host));
        await eventually(
          'warm-up lease withdrawn',
          async () => (await hostState(hosts.env.client, host)).lease === null,
        );
        await coordinator.executeUpdate(pauseHostUpdate, {
          args: [{ by: 'bob', reason: 'driver upgrade tonight' }],
        });
        await healing.executeUpdate(forceEscalationUpdate, {
          args: [{ by: 'bob', reason: 'test the pause' }],
        });
        const refused = await eventually('refused while paused', async () => {
          const s = await healingState(hosts.env.client, host);
          return decisionsOf(s, 'canary_refused_by_host')[0];
        });
        assert.ok((await hostState(hosts.env.client, host)).counters.leaseRefusals.paused);
        assert.equal(refused.params.refusal, 'paused');
        assert.ok(
          refused.params.reason.includes('driver upgrade tonight'),
          "the operator's own reason is passed on",
        );
        await coordinator.executeUpdate(resumeHostUpdate, { args: [{ by: 'bob', reason: 'upgrade done' }] });
        await hosts.env.sleep(24 * HOUR);
        await eventually(
          'canary after resume',
          async () => (await healingState(hosts.env.client, host)).lastCanary ?? undefined,
        );
      },
    );
  });
});

describe('operator actions', () => {
  test('clear disarms and forgets the count; escalate arms at once; both record who and why', async () => {
    const gpu = scriptedGpu();
    await withHost(testPolicy(), gpu, async (host) => {
      await threeSymptoms(host);
      const handle = hosts.env.client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
      const cleared = await handle.executeUpdate(clearEscalationUpdate, {
        args: [{ by: 'carol', reason: 'false alarm: load test' }],
      });
      assert.equal(cleared.armed, false);
      assert.equal(cleared.count24h, 0);
      const entry = decisionsOf(cleared, 'escalation_cleared')[0];
      assert.equal(entry?.by, 'carol');
      // "false alarm: load test (was armed, 3 symptoms in 24 h forgotten)"
      assert.deepEqual(entry?.params, { reason: 'false alarm: load test', wasArmed: true, forgotten: 3 });
      const forced = await handle.executeUpdate(forceEscalationUpdate, {
        args: [{ by: 'dave', reason: 'known bad config' }],
      });
      assert.equal(forced.armed, true);
      assert.equal(forced.forced?.by, 'dave');
      assert.equal(forced.mode, 'canary');
      await assert.rejects(
        handle.executeUpdate(forceEscalationUpdate, { args: [{ by: '', reason: 'x' }] }),
        (err: unknown) =>
          err instanceof WorkflowUpdateFailedError &&
          /^by: expected a non-empty string/.test(String(err.cause?.message)),
      );
    });
  });
});

/** 00:00 UTC of the last Sunday of the given month (0-based) at or after now: Berlin's DST days. */
function nextDstSunday(nowMs: number, month: number): number {
  for (let year = new Date(nowMs).getUTCFullYear(); ; year++) {
    const lastDay = new Date(Date.UTC(year, month + 1, 0));
    const sunday = Date.UTC(year, month, lastDay.getUTCDate() - lastDay.getUTCDay());
    // The change happens at 01:00Z; escalate the evening before, so that day must still be ahead.
    if (sunday - 3 * HOUR > nowMs) return sunday;
  }
}
