// What each kind may make the loop do (issue 13, point 2), on the time-skipping server: a hardware fault
// (gpu_xid) arms and explains but never runs a canary; an invented kind is counted and shown, never arms, and
// its workflow ends after 24 h without a symptom; kinds an operator lets heal share the host's attempts, so a
// config cannot ratchet down one step per kind; and the coordinator itself refuses a canary lease for a kind
// that does not heal, whoever asks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { healingWorkflowId, hostCoordinatorWorkflowId, hostTaskQueue } from '../../src/domain/identifiers.js';
import { forceEscalationUpdate } from '../../src/workflows/healing-messages.js';
import { requestLeaseSignal } from '../../src/workflows/host-coordinator-messages.js';
import { HostCoordinatorWorkflow } from '../../src/workflows/host-coordinator-workflow.js';
import { freshHosts } from '../support/fresh-host.js';
import { type ScriptedGpu, scriptedGpu } from '../support/scripted-gpu.js';
import {
  decisionsOf,
  eventually,
  healingState,
  hostState,
  skipToUtc,
  symptom,
  testPolicy,
} from '../support/healing-harness.js';

const HOUR = 3600_000;
const hosts = freshHosts('kinds');
const withHost = hosts.withHost.bind(hosts);

const canaryStarts = (gpu: ScriptedGpu) => gpu.journal.filter((e) => e.action === 'canary:start');
const XID_79 = 'NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.';

test('gpu_xid arms and says what to do, but never runs a canary, in the window or when forced', async () => {
  const gpu = scriptedGpu();
  await withHost(testPolicy(), gpu, async (host) => {
    await skipToUtc(hosts.env, 3, 1); // inside the window: a healable kind would run a canary at once
    for (let i = 0; i < 3; i++) {
      await symptom(hosts.env.client, host, 'gpu_xid', {
        id: `xid-${i}`,
        details: { family: 'gpu_xid', text: XID_79 },
      });
    }
    const armed = await eventually('armed', async () => {
      const s = await healingState(hosts.env.client, host, 'gpu_xid');
      return s.armed && s.phase === 'watching' ? s : undefined;
    });
    assert.equal(armed.kindAction, 'alert');
    assert.equal(armed.mode, 'predictive', 'never canary mode');
    assert.match(armed.advice ?? '', /^Xid 79: the GPU fell off the bus: drain the host and power-cycle it/);
    const armedDecision = decisionsOf(armed, 'escalation_armed')[0]!;
    assert.match(armedDecision.params.alertOnly ?? '', /^Xid 79/, 'armed as alert only, no canary');
    assert.equal(armedDecision.params.alertOnly, armed.advice);
    const handle = hosts.env.client.workflow.getHandle(healingWorkflowId(host, 'gpu_xid'));
    await handle.executeUpdate(forceEscalationUpdate, { args: [{ by: 'tester', reason: 'try it' }] });
    await hosts.env.sleep(2 * HOUR);
    assert.equal(canaryStarts(gpu).length, 0, 'no canary for a hardware fault');
    const later = await healingState(hosts.env.client, host, 'gpu_xid');
    assert.equal(later.recommendation, null, 'no config is predicted for it either');
    assert.equal(later.lastCanary, null);
  });
});

test('an invented kind is counted and visible, never arms or acts, and its workflow ends after 24 h idle', async () => {
  const gpu = scriptedGpu();
  await withHost(testPolicy(), gpu, async (host) => {
    await skipToUtc(hosts.env, 3, 1);
    for (let i = 0; i < 5; i++) {
      const answer = await symptom(hosts.env.client, host, 'made_up_kind', { id: `made-${i}` });
      assert.equal(answer.outcome, 'counted');
      assert.equal(answer.armed, false);
    }
    const s = await healingState(hosts.env.client, host, 'made_up_kind');
    assert.equal(s.count24h, 5);
    assert.equal(s.kindAction, 'count');
    assert.match(s.advice ?? '', /only counts: .*KLR_KIND_ACTIONS=made_up_kind=alert or =heal lets it/);
    const notArmed = decisionsOf(s, 'escalation_not_armed');
    assert.equal(notArmed.length, 1, 'said once, at the threshold');
    assert.equal(notArmed[0]!.params.count, s.threshold);
    assert.equal(notArmed[0]!.params.advice, s.advice);
    const handle = hosts.env.client.workflow.getHandle(healingWorkflowId(host, 'made_up_kind'));
    await assert.rejects(
      handle.executeUpdate(forceEscalationUpdate, { args: [{ by: 'tester', reason: 'try it' }] }),
      (err: unknown) => err instanceof WorkflowUpdateFailedError && /only counts/.test(String(err.cause)),
    );
    // 24 h after its last symptom, and only then, the workflow ends.
    await hosts.env.sleep(23 * HOUR);
    assert.equal((await handle.describe()).status.name, 'RUNNING');
    await hosts.env.sleep(2 * HOUR);
    await eventually('ended', async () => (await handle.describe()).status.name === 'COMPLETED');
    assert.equal(canaryStarts(gpu).length, 0);
  });
});

test('kinds an operator lets heal share the host: KLR_HOST_MAX_CANARIES_7D stops the ratchet across kinds', async () => {
  const gpu = scriptedGpu();
  const policy = testPolicy({
    kindActions: { sglang_oom: 'heal', gpu_mem_pressure: 'heal' },
    hostMaxCanaries7d: 2,
    cooldownHours: 0,
    escalationFlagTtlSeconds: 0,
  });
  await withHost(policy, gpu, async (host) => {
    await skipToUtc(hosts.env, 3, 1);
    for (const kind of ['vllm_oom', 'sglang_oom', 'gpu_mem_pressure']) {
      for (let i = 0; i < 3; i++) await symptom(hosts.env.client, host, kind, { id: `${kind}-${i}` });
      await eventually(`${kind} done with the window`, async () => {
        const s = await healingState(hosts.env.client, host, kind);
        return s.phase === 'waiting_for_window' || s.lastCanary !== null ? s : undefined;
      });
    }
    assert.equal(canaryStarts(gpu).length, 2, 'two canaries on the host, whatever the kinds');
    const third = await healingState(hosts.env.client, host, 'gpu_mem_pressure');
    assert.equal(third.lastCanary, null);
    const coordinator = await hostState(hosts.env.client, host);
    const refusal = decisionsOf(coordinator, 'lease_refused').find(
      (d) => d.params.kind === 'gpu_mem_pressure',
    );
    assert.ok(refusal, 'the coordinator refused the third');
    assert.equal(refusal.params.refusal, 'host_canary_cap');
    assert.equal(coordinator.counters.leaseRefusals.host_canary_cap, 1);
  });
});

test('the coordinator refuses a canary lease for a kind that does not heal, whoever asks', async () => {
  const gpu = scriptedGpu();
  await withHost(testPolicy(), gpu, async (host) => {
    await skipToUtc(hosts.env, 3, 1);
    for (const kind of ['gpu_xid', 'made_up_kind']) {
      await hosts.env.client.workflow.signalWithStart(HostCoordinatorWorkflow, {
        workflowId: hostCoordinatorWorkflowId(host),
        taskQueue: hostTaskQueue(host),
        args: [{ host }],
        signal: requestLeaseSignal,
        signalArgs: [
          { requestId: `r-${kind}`, holderWorkflowId: 'nobody', kind, predictedDowntimeMs: 10_000 },
        ],
      });
    }
    const s = await eventually('both answered', async () => {
      const v = await hostState(hosts.env.client, host);
      return v.counters.leaseRefusals.kind_cannot_heal === 2 ? v : undefined;
    });
    assert.equal(s.lease, null);
    assert.deepEqual(
      decisionsOf(s, 'lease_refused').map((d) => d.params.kind),
      ['gpu_xid', 'made_up_kind'],
    );
    assert.equal(
      decisionsOf(s, 'lease_refused').find((d) => d.params.kind === 'gpu_xid')!.params.refusal,
      'kind_cannot_heal',
    );
  });
});
