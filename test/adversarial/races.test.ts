// Races and timing on the time-skipping server (issue 13, points 4 and 7, and what the fuzzing found):
//  - an operator's rollback holds the host's lease: refused while a canary runs, a canary refused while it
//    runs, its downtime charged to the budget and its cooldown started;
//  - a coordinator told to continue as new while a canary holds the lease keeps answering (it used to spin
//    in its loop and take the worker thread down), and continues as new once the lease is released;
//  - a redelivered symptom is answered with the count as it is now and counted as a duplicate;
//  - operator text cannot format the Web UI's details;
//  - a canary whose workflow was terminated mid-canary is restored by the coordinator when its lease expires.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WithStartWorkflowOperation } from '@temporalio/client';
import { healingWorkflowId, hostCoordinatorWorkflowId, hostTaskQueue } from '../../src/domain/identifiers.js';
import { forceEscalationUpdate } from '../../src/workflows/healing-messages.js';
import {
  acquireOperatorLeaseUpdate,
  releaseLeaseSignal,
  requestLeaseSignal,
} from '../../src/workflows/host-coordinator-messages.js';
import { holderBusy } from '../../src/activities/recover-lease.js';
import { HostCoordinatorWorkflow } from '../../src/workflows/host-coordinator-workflow.js';
import { freshHosts } from '../support/fresh-host.js';
import { scriptedGpu } from '../support/scripted-gpu.js';
import {
  decisionsOf,
  eventually,
  healingState,
  hostState,
  skipToUtc,
  symptom,
  testPolicy,
} from '../support/healing-harness.js';

const hosts = freshHosts('races');
const withHost = hosts.withHost.bind(hosts);

const coordinatorStart = (host: string) =>
  new WithStartWorkflowOperation(HostCoordinatorWorkflow, {
    workflowId: hostCoordinatorWorkflowId(host),
    taskQueue: hostTaskQueue(host),
    args: [{ host }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });

const rollbackLease = (host: string, requestId: string) =>
  hosts.env.client.workflow.executeUpdateWithStart(acquireOperatorLeaseUpdate, {
    args: [
      { requestId, purpose: 'rollback', by: 'tester', reason: 'slow prompts', predictedDowntimeMs: 20_000 },
    ],
    startWorkflowOperation: coordinatorStart(host),
  });

test('a rollback holds the lease: refused while a canary runs; while it holds it, no canary starts; its downtime is charged', async () => {
  const gpu = scriptedGpu({ canaryScripts: ['gated', 'pass'] });
  await withHost(testPolicy({ cooldownHours: 0, escalationFlagTtlSeconds: 0 }), gpu, async (host) => {
    await skipToUtc(hosts.env, 3, 1);
    for (let i = 0; i < 3; i++) await symptom(hosts.env.client, host, 'vllm_oom', { id: `r-${i}` });
    await eventually(
      'canary running',
      async () => (await healingState(hosts.env.client, host)).phase === 'canary_running',
    );

    const refused = await rollbackLease(host, 'rb-1');
    assert.equal(refused.granted, false);
    assert.match(
      refused.reason,
      /^a vllm_oom canary holds the host since 03:0\d UTC .*wait for it \(healctl status\), or stop it with healctl cancel$/,
    );
    assert.equal(
      (await rollbackLease(host, 'rb-1')).granted,
      false,
      'the same request id gets the same answer',
    );

    gpu.openGate();
    await eventually(
      'promoted',
      async () => (await healingState(hosts.env.client, host)).lastCanary?.outcome === 'promoted',
    );
    await eventually('lease free', async () => (await hostState(hosts.env.client, host)).lease === null);

    const granted = await rollbackLease(host, 'rb-2');
    assert.equal(granted.granted, true, granted.reason);
    assert.ok(granted.leaseId && granted.expiresAt);
    // A canary asked for meanwhile is refused: one change of the live service at a time.
    const healing = hosts.env.client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
    await healing.executeUpdate(forceEscalationUpdate, { args: [{ by: 'tester', reason: 'again' }] });
    await eventually('canary refused: busy', async () => {
      const s = await hostState(hosts.env.client, host);
      return (s.counters.leaseRefusals.busy ?? 0) > 0 ? s : undefined;
    });
    assert.equal(gpu.journal.filter((e) => e.action === 'canary:start').length, 1);

    const before = await hostState(hosts.env.client, host);
    await hosts.env.client.workflow
      .getHandle(hostCoordinatorWorkflowId(host))
      .signal(releaseLeaseSignal, { leaseId: granted.leaseId, downtimeMs: 7_000, outcome: 'rolled_back' });
    const after = await eventually('rollback charged', async () => {
      const s = await hostState(hosts.env.client, host);
      return s.lease === null && s.budgetSpentMs > before.budgetSpentMs ? s : undefined;
    });
    assert.equal(after.budgetSpentMs - before.budgetSpentMs, 7_000);
    const released = decisionsOf(after, 'lease_released').filter((d) => d.params.outcome === 'rolled_back');
    assert.equal(released.length, 1);
    assert.equal(released[0]!.params.downtimeMs, 7_000);
  });
});

test('a coordinator asked to continue as new while a canary holds the lease keeps answering, then continues as new', async () => {
  const gpu = scriptedGpu({ canaryScripts: ['gated'] });
  await withHost(testPolicy({ historyEventsLimit: 200, escalationFlagTtlSeconds: 0 }), gpu, async (host) => {
    await skipToUtc(hosts.env, 3, 1);
    for (let i = 0; i < 3; i++) await symptom(hosts.env.client, host, 'vllm_oom', { id: `c-${i}` });
    await eventually(
      'canary running',
      async () => (await healingState(hosts.env.client, host)).phase === 'canary_running',
    );
    // 60 stray releases: 4 × 60 events ≥ the limit of 200, so the coordinator wants to continue as new.
    const coordinator = hosts.env.client.workflow.getHandle(hostCoordinatorWorkflowId(host));
    for (let i = 0; i < 60; i++) {
      await coordinator.signal(releaseLeaseSignal, {
        leaseId: `stray-${i}`,
        downtimeMs: 0,
        outcome: 'not_started',
      });
    }
    const held = await eventually('strays handled, lease still held', async () => {
      const s = await hostState(hosts.env.client, host);
      return s.lease !== null && decisionsOf(s, 'release_ignored').length > 0 ? s : undefined;
    });
    assert.equal(held.runs, 1, 'no continue-as-new while the lease is held');
    gpu.openGate();
    await eventually(
      'promoted',
      async () => (await healingState(hosts.env.client, host)).lastCanary?.outcome === 'promoted',
    );
    // The first run ends as continued-as-new (asked of the run itself: a query would wait for the new run).
    const firstRun = hosts.env.client.workflow.getHandle(hostCoordinatorWorkflowId(host), held.firstRunId);
    await eventually(
      'continued as new',
      async () => (await firstRun.describe()).status.name === 'CONTINUED_AS_NEW',
    );
  });
});

test('a redelivered symptom is answered with the count as it is now, as a duplicate', async () => {
  const gpu = scriptedGpu();
  await withHost(testPolicy({ threshold24h: 100 }), gpu, async (host) => {
    const first = await symptom(hosts.env.client, host, 'vllm_oom', { id: 'dup-a' });
    assert.deepEqual([first.outcome, first.count24h], ['counted', 1]);
    await symptom(hosts.env.client, host, 'vllm_oom', { id: 'dup-b' });
    const again = await symptom(hosts.env.client, host, 'vllm_oom', { id: 'dup-a' });
    assert.deepEqual([again.outcome, again.count24h], ['duplicate', 2], 'not the first answer replayed');
    assert.equal((await healingState(hosts.env.client, host)).totals.duplicates, 1);
  });
});

test('operator text is shown as text in the Web UI details: no HTML, no Markdown formatting', async () => {
  const gpu = scriptedGpu();
  await withHost(testPolicy({ threshold24h: 100 }), gpu, async (host) => {
    await symptom(hosts.env.client, host, 'vllm_oom', { id: 'md-1' });
    const handle = hosts.env.client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
    const reason = '<img src=x onerror=alert(1)> **urgent** [click](http://evil.example)';
    await handle.executeUpdate(forceEscalationUpdate, { args: [{ by: '<b>eve</b>', reason }] });
    const details = await eventually('details written', async () => {
      const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      return meta.currentDetails?.includes('forced by') ? meta.currentDetails : undefined;
    });
    assert.ok(!details.includes('<img'), details);
    assert.ok(!details.includes('<b>'), details);
    assert.ok(!details.includes('**urgent**'), details);
    assert.ok(!details.includes('](http'), details);
    assert.match(details, /&lt;img src=x onerror=alert\\\(1\\\)&gt; \\\*\\\*urgent\\\*\\\*/);
  });
});

test('an abandoned canary: its holder gone, the coordinator restores the service when the lease expires', async () => {
  const gpu = scriptedGpu({ canaryScripts: ['gated'] });
  await withHost(testPolicy({ escalationFlagTtlSeconds: 0 }), gpu, async (host) => {
    await skipToUtc(hosts.env, 3, 1);
    for (let i = 0; i < 3; i++) await symptom(hosts.env.client, host, 'vllm_oom', { id: `t-${i}` });
    await eventually(
      'canary running',
      async () => (await healingState(hosts.env.client, host)).phase === 'canary_running',
    );
    // While the holder runs its canary it is busy: a lease expiring now would be left to it.
    const healingId = healingWorkflowId(host, 'vllm_oom');
    assert.match((await holderBusy(hosts.env.client, healingId)) ?? '', /still runs runCanary$/);
    // What an operator's `temporal workflow terminate`, or the server's history-size limit after a flood of
    // big signals, does: the workflow is gone, and its restore will never run.
    await hosts.env.client.workflow.getHandle(healingId).terminate('test: holder gone');
    assert.equal(await holderBusy(hosts.env.client, healingId), null);
    assert.equal(await holderBusy(hosts.env.client, 'kloros-healing/nobody/vllm_oom'), null);
    gpu.openGate(); // the orphaned canary activity runs on to its end; its result has nobody to go to
  });
});

test('a lease whose holder never releases it: the coordinator restores the service at its expiry, then frees the host', async () => {
  const gpu = scriptedGpu();
  await withHost(testPolicy(), gpu, async (host) => {
    await skipToUtc(hosts.env, 3, 1);
    // The lease is granted to a holder that ignores the answer (here the coordinator itself, which has no
    // canary or restore pending): the situation of a holder whose workflow was terminated mid-canary.
    const coordinatorId = hostCoordinatorWorkflowId(host);
    await hosts.env.client.workflow.signalWithStart(HostCoordinatorWorkflow, {
      workflowId: coordinatorId,
      taskQueue: hostTaskQueue(host),
      args: [{ host }],
      signal: requestLeaseSignal,
      signalArgs: [
        { requestId: 'lost', holderWorkflowId: coordinatorId, kind: 'vllm_oom', predictedDowntimeMs: 20_000 },
      ],
    });
    await eventually('granted', async () => (await hostState(hosts.env.client, host)).lease !== null);
    await hosts.env.sleep(31 * 60_000); // past KLR_CANARY_LEASE_TTL (30 min)
    const s = await eventually('expired and restored', async () => {
      const v = await hostState(hosts.env.client, host);
      return v.lease === null && decisionsOf(v, 'lease_expired').length > 0 ? v : undefined;
    });
    // Its holder no longer ran the canary: previous config restored (12 s downtime).
    assert.deepEqual(decisionsOf(s, 'lease_expired')[0]!.params, {
      kind: 'vllm_oom',
      ttlMs: 30 * 60_000,
      recovery: { action: 'restored', downtimeMs: 12_000 },
    });
    assert.deepEqual(
      gpu.journal.map((e) => e.action),
      ['restore:start', 'restore:end'],
    );
    assert.equal(s.budgetSpentMs, 20_000 + 12_000, 'the predicted downtime and the restore');
    assert.equal(s.restoreFailure, null);
  });
});
