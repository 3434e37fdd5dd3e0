// Bad input against a real HealingWorkflow on the time-skipping server (issue 7, item 3): after valid
// symptoms, every malformed payload of the table goes through the signal and through the update. The
// update refuses each with the field named; the signal records each as rejected; nothing fails or blocks
// the workflow, the symptoms accepted before are all still counted, and new valid ones count.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { healingWorkflowId } from '../../src/domain/identifiers.js';
import {
  clearEscalationUpdate,
  recordSymptomUpdate,
  symptomSignal,
} from '../../src/workflows/healing-messages.js';
import { createHostWorker, createTimeSkippingEnv } from '../support/test-env.js';
import { scriptedGpu } from '../support/scripted-gpu.js';
import {
  decisionsOf,
  eventually,
  healingState,
  symptom,
  testPolicy,
  uniqueHost,
} from '../support/healing-harness.js';
import { BAD_SYMPTOMS } from '../support/bad-symptoms.js';

const HOUR = 3600_000;
let env: TestWorkflowEnvironment;
let auditDir: string;

before(async () => {
  auditDir = await mkdtemp(join(tmpdir(), 'klr-bad-input-'));
  env = await createTimeSkippingEnv();
});

after(async () => {
  await env?.teardown();
  await rm(auditDir, { recursive: true, force: true });
});

test('malformed symptoms through the signal and the update: refused, and nothing accepted is lost', async () => {
  const host = uniqueHost('bad-input');
  // A threshold out of reach: the test is about counting, not canaries.
  const worker = await createHostWorker(
    env,
    host,
    testPolicy({ threshold24h: 1000 }),
    scriptedGpu().activities,
    auditDir,
  );
  await worker.runUntil(async () => {
    for (const id of ['ok-1', 'ok-2', 'ok-3'])
      assert.equal((await symptom(env.client, host, 'vllm_oom', { id })).outcome, 'counted');
    const handle = env.client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
    const now = await env.currentTimeMs();
    // Valid by the schema, refused by the workflow: the wrong kind, a far-future event time.
    const refusedByWorkflow: [string, unknown, RegExp][] = [
      [
        'another kind',
        { kind: 'kv_cache_oom' },
        /^kind: this workflow heals "vllm_oom" on .*; send "kv_cache_oom" to the workflow of that kind$/,
      ],
      [
        'far-future event time',
        { kind: 'vllm_oom', eventTime: now + 365 * 24 * HOUR },
        /^eventTime: .* is more than 5 m in the future; check the sender's clock$/,
      ],
      [
        'future ISO event time',
        { kind: 'vllm_oom', eventTime: new Date(now + HOUR).toISOString() },
        /in the future/,
      ],
    ];
    const table = [...BAD_SYMPTOMS, ...refusedByWorkflow];
    for (const [name, payload, message] of table) {
      await assert.rejects(
        handle.executeUpdate(recordSymptomUpdate, { args: [payload as never] }),
        (err: unknown) => {
          assert.ok(err instanceof WorkflowUpdateFailedError, `${name}: ${String(err)}`);
          assert.match(String(err.cause?.message), message, name);
          return true;
        },
      );
      await handle.signal(symptomSignal, payload as never);
    }
    // A 5 MB payload never reaches the workflow: the server refuses it; the workflow is unaffected. Sent
    // on a connection without the SDK's retries: they would send it ten times over 40 s, each refused.
    const once = await Connection.connect({ address: env.address, interceptors: [] });
    try {
      await assert.rejects(
        new Client({ connection: once, namespace: env.namespace ?? 'default' }).workflow
          .getHandle(healingWorkflowId(host, 'vllm_oom'))
          .signal(symptomSignal, { kind: 'vllm_oom', details: { text: 'x'.repeat(5 * 1024 * 1024) } }),
        (err: Error) => {
          assert.match(String(err.cause), /RESOURCE_EXHAUSTED: .*exceeds maximum size/);
          return true;
        },
      );
    } finally {
      await once.close();
    }

    const state = await eventually('every malformed signal recorded', async () => {
      const s = await healingState(env.client, host);
      return s.totals.rejected === table.length ? s : undefined;
    });
    assert.equal(state.totals.counted, 3, 'the symptoms accepted before are all still counted');
    assert.equal(state.count24h, 3);
    assert.equal(state.totals.duplicates, 0);
    assert.equal(state.totals.stale, 0);
    const reasons = decisionsOf(state, 'message_rejected')
      .filter((d) => d.params.message === 'symptom')
      .map((d) => d.params.problem);
    assert.ok(reasons.some((r) => /^details\.deficitMb: expected a size ≥ 0 MiB$/.test(r)));
    assert.ok(reasons.some((r) => /^kind: expected a symptom kind/.test(r)));
    assert.ok(state.decisions.length <= 200, 'the decision log stays bounded');

    // Bad operator actions are refused by the validator, naming the field.
    for (const [action, message] of [
      [{ by: '', reason: 'x' }, /^by: expected a non-empty string/],
      [{ by: 'ops', reason: 'a\u0000b' }, /^reason: control characters are not allowed$/],
      [{ by: 'ops', reason: 'r'.repeat(501) }, /^reason: expected at most 500 characters$/],
      ['clear it', /^expected \{"by": "\.\.\.", "reason": "\.\.\."\}$/],
    ] as [unknown, RegExp][]) {
      await assert.rejects(
        handle.executeUpdate(clearEscalationUpdate, { args: [action as never] }),
        (err: unknown) => {
          assert.ok(err instanceof WorkflowUpdateFailedError);
          assert.match(String(err.cause?.message), message);
          return true;
        },
      );
    }

    // Still running, still answering, still counting; a redelivery of an accepted id is still caught.
    assert.equal((await handle.describe()).status.name, 'RUNNING');
    const fourth = await symptom(env.client, host, 'vllm_oom', { id: 'ok-4' });
    assert.equal(fourth.outcome, 'counted');
    assert.equal(fourth.count24h, 4);
    const again = await handle.executeUpdate(recordSymptomUpdate, {
      args: [{ kind: 'vllm_oom', id: 'ok-1' }],
    });
    assert.equal(again.outcome, 'duplicate');
    assert.equal(again.count24h, 4);
    const end = await healingState(env.client, host);
    assert.equal(end.totals.counted, 4);
    assert.equal(end.count24h, 4);
  });
});
