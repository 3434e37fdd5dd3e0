// Payload fuzzing against running workflows (issue 13, point 1): thousands of random and hostile payloads —
// huge, negative and NaN-like numbers, deep nesting, odd Unicode, wrong types, undecodable bytes — as
// signals, updates and start inputs of a HealingWorkflow that holds a canary and of its host coordinator.
// Whatever arrives, no workflow task may fail, queries keep answering, and the canary in flight still ends
// in promote or restore. KLR_FUZZ_PAYLOADS (default 2000) and KLR_FUZZ_SEED (default 1) replay a run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { healingWorkflowId, hostCoordinatorWorkflowId, hostTaskQueue } from '../../src/domain/identifiers.js';
import { createHostWorker, createTimeSkippingEnv } from '../support/test-env.js';
import { scriptedGpu } from '../support/scripted-gpu.js';
import {
  eventually,
  healingState,
  hostState,
  skipToUtc,
  symptom,
  testPolicy,
  uniqueHost,
} from '../support/healing-harness.js';
import { type Prng, prng } from '../support/prng.js';

const { EventType } = proto.temporal.api.enums.v1;
const PAYLOADS = Number(process.env.KLR_FUZZ_PAYLOADS ?? 2000);
const SEED = Number(process.env.KLR_FUZZ_SEED ?? 1);
const IN_FLIGHT = Number(process.env.KLR_FUZZ_IN_FLIGHT ?? 16);

let env: TestWorkflowEnvironment;
let auditDir: string;

before(async () => {
  auditDir = await mkdtemp(join(tmpdir(), 'klr-fuzz-'));
  env = await createTimeSkippingEnv();
});

after(async () => {
  await env?.teardown();
  await rm(auditDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------- payloads

const NUMBERS = [
  9_000_000_000_000_000,
  -9_000_000_000_000_000,
  8.64e15 + 1,
  253_402_300_800_000,
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_VALUE,
  -0,
  0.5,
  -1,
  2 ** 31,
  2 ** 53 + 2,
  1e21,
  0,
];
const STRINGS = [
  'NaN',
  'Infinity',
  '-Infinity',
  '1e999',
  '',
  ' ',
  'vllm_oom',
  'vllm_oom.',
  'VLLM_OOM',
  'gpu_xid',
  '\u202Evllm_oom',
  'vllm\u200Boom',
  '\uD800',
  '\uDFFF\uD800',
  'a'.repeat(5000),
  '<script>alert(1)</script>',
  '**bold** [x](javascript:alert(1))',
  '${jndi:ldap://x}',
  '__proto__',
  'constructor',
  '../../etc/passwd',
  '\u0000\u0007\u001b[31m',
  '2026-13-45T99:99:99Z',
  '+275760-09-13T00:00:00.001Z',
  '9999-12-31T23:59:59Z',
  '0000-01-01T00:00:00Z',
  '2026-11-28T03:04:05+14:00',
  '😀'.repeat(300),
  'null',
  'true',
  '{}',
];
const KEYS = [
  'kind',
  'eventTime',
  'id',
  'source',
  'details',
  'deficitMb',
  'allocMb',
  'text',
  'family',
  'gpu',
  'estimatedMaxModelLen',
  '__proto__',
  'constructor',
  'prototype',
  'by',
  'reason',
  'leaseId',
  'requestId',
  'holderWorkflowId',
  'predictedDowntimeMs',
  'downtimeMs',
  'outcome',
  'granted',
  'budgetLeftMs',
  'carried',
  'host',
  'window',
  'decisions',
  'x'.repeat(300),
];

function hostileValue(r: Prng, depth = 0): unknown {
  const pick = r.int(0, depth > 3 ? 5 : 8);
  switch (pick) {
    case 0:
      return r.pick(NUMBERS);
    case 1:
      return r.pick(STRINGS);
    case 2:
      return r.chance(0.5);
    case 3:
      return null;
    case 4:
      return r.int(-1e9, 1e9) * (r.chance(0.5) ? 1 : 0.001);
    case 5:
      return r.pick(KEYS);
    case 6:
      return Array.from({ length: r.int(0, 4) }, () => hostileValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(0, 5); i > 0; i--) o[r.pick(KEYS)] = hostileValue(r, depth + 1);
      return o;
    }
  }
}

/** Mostly payloads that look like the real thing with one or two fields gone wrong: the likely attack. */
function hostileMessage(r: Prng): unknown {
  if (r.chance(0.25)) return hostileValue(r);
  const base: Record<string, unknown> = r.pick([
    { kind: 'vllm_oom', eventTime: Date.now(), id: `fuzz-${r.int(0, 1e9)}`, details: { deficitMb: 512 } },
    { by: 'fuzzer', reason: 'fuzz' },
    { requestId: 'r', holderWorkflowId: 'w', kind: 'vllm_oom', predictedDowntimeMs: 1000 },
    { leaseId: 'l', downtimeMs: 10, outcome: 'promoted' },
    {
      requestId: 'r',
      granted: true,
      leaseId: 'l',
      reason: 'x',
      budgetLeftMs: 1,
      budgetTotalMs: 1,
      cooldownUntil: null,
    },
  ]);
  const out = structuredClone(base);
  for (let i = r.int(1, 2); i > 0; i--) {
    const keys = Object.keys(out);
    const key = r.chance(0.8) && keys.length > 0 ? r.pick(keys) : r.pick(KEYS);
    out[key] = hostileValue(r);
  }
  return out;
}

type RawPayload = { metadata: Record<string, Uint8Array>; data: Uint8Array };
const bytes = (s: string) => new TextEncoder().encode(s);

/** Payloads no SDK would write: undecodable bytes, unknown encodings, JSON nested deeper than parsers go. */
function rawPayload(r: Prng): RawPayload {
  const depth = r.pick([1000, 10_000, 50_000]);
  const json = (data: string): RawPayload => ({
    metadata: { encoding: bytes('json/plain') },
    data: bytes(data),
  });
  return r.pick([
    json('{"kind": "vllm_oom", "eventTime": 1e999}'),
    json('{"kind": "vllm_oom", "eventTime": 9000000000000000}'),
    json('{not json'),
    json(''),
    json('['.repeat(depth) + ']'.repeat(depth)),
    json('{"a":'.repeat(depth) + '1' + '}'.repeat(depth)),
    json('"\\ud800"'),
    json('{"__proto__": {"polluted": true}, "kind": "vllm_oom"}'),
    { metadata: { encoding: bytes('binary/plain') }, data: bytes('\u0000\u0001') },
    { metadata: { encoding: bytes('binary/null') }, data: new Uint8Array() },
    {
      metadata: { encoding: bytes('json/protobuf'), messageType: bytes('temporal.api.common.v1.Payload') },
      data: bytes('{'),
    },
    { metadata: { encoding: bytes('binary/encrypted') }, data: bytes('xyz') },
    { metadata: {}, data: bytes('{}') },
  ]);
}

// ---------------------------------------------------------------------------------------------- sending

const HEALING_SIGNALS = ['symptom', 'leaseDecision', 'no_such_signal'];
const HEALING_UPDATES = ['recordSymptom', 'clearEscalation', 'forceEscalation', 'no_such_update'];
const HOST_SIGNALS = ['requestLease', 'releaseLease'];
const HOST_UPDATES = ['lease', 'pause', 'resume', 'acknowledgeRestoreFailure'];

async function sendRawSignal(client: Client, workflowId: string, signalName: string, payloads: RawPayload[]) {
  await client.workflowService.signalWorkflowExecution({
    namespace: client.options.namespace,
    workflowExecution: { workflowId },
    signalName,
    input: { payloads },
    identity: 'fuzzer',
  });
}

/** One message; an answer of any kind is fine, a hang is not (the deadline turns it into a failure). */
async function sendOne(client: Client, r: Prng, healingId: string, hostId: string): Promise<string> {
  const toHost = r.chance(0.3);
  const workflowId = toHost ? hostId : healingId;
  const handle = client.workflow.getHandle(workflowId);
  const kind = r.int(0, 9);
  const deadline = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`no answer from ${workflowId} within 30 s`)), 30_000).unref(),
  );
  const send = async (): Promise<string> => {
    if (kind <= 1) {
      const payloads = Array.from({ length: r.int(0, 3) }, () => rawPayload(r));
      await sendRawSignal(client, workflowId, r.pick(toHost ? HOST_SIGNALS : HEALING_SIGNALS), payloads);
      return 'raw signal';
    }
    const args = r.chance(0.1)
      ? []
      : r.chance(0.1)
        ? [hostileMessage(r), hostileMessage(r)]
        : [hostileMessage(r)];
    if (kind <= 5) {
      await handle.signal(r.pick(toHost ? HOST_SIGNALS : HEALING_SIGNALS), ...args);
      return 'signal';
    }
    try {
      await handle.executeUpdate(r.pick(toHost ? HOST_UPDATES : HEALING_UPDATES), {
        args: args as [unknown],
      });
      return 'update accepted';
    } catch (err) {
      if ((err as Error).name === 'WorkflowUpdateFailedError') return 'update refused';
      throw err;
    }
  };
  return Promise.race([send(), deadline]);
}

/**
 * Every failed workflow task in every run of the chain. The hostile payloads make the history large, more
 * than gRPC's default 4 MiB per message, so it is read on a connection of its own that takes more.
 */
async function taskFailures(client: Client, workflowId: string): Promise<string[]> {
  const connection = await Connection.connect({
    address: env.address,
    channelArgs: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 },
  });
  try {
    const reader = new Client({ connection, namespace: client.options.namespace });
    const out: string[] = [];
    let runId: string | undefined = (await reader.workflow.getHandle(workflowId).describe()).runId;
    while (runId) {
      const history = await reader.workflow.getHandle(workflowId, runId).fetchHistory();
      for (const e of history.events ?? []) {
        if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) {
          const failure = e.workflowTaskFailedEventAttributes?.failure;
          out.push(
            `${workflowId} run ${runId} event ${String(e.eventId)}: ${failure?.message ?? 'task failed'}`,
          );
        }
      }
      const previous: string | null | undefined =
        history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
      runId = previous || undefined;
    }
    return out;
  } finally {
    await connection.close();
  }
}

/**
 * The queries the test polls, each with a deadline. After the storm the Java test server now and then
 * leaves one query unanswered (one that meets the workflow continuing as new; docs/testing.md, the test
 * server's failure modes) while fresh queries answer at once: without a deadline the poll waited until
 * the connection's keepalive failed it (80 s and more, once for ever). `eventually` asks again, so an
 * answer must still come.
 */
const QUERY_DEADLINE_MS = 5_000;
let unanswered = 0;
async function bounded<T>(query: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + QUERY_DEADLINE_MS;
  try {
    return await env.client.connection.withDeadline(deadline, query);
  } catch (err) {
    if (Date.now() >= deadline) unanswered++;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------- the test

test(`${PAYLOADS} hostile payloads to a workflow holding a canary: no task fails, the canary still ends`, async () => {
  const host = uniqueHost('fuzz');
  const gpu = scriptedGpu({ canaryScripts: ['gated'] });
  // A history limit low enough that the storm makes the workflows continue as new meanwhile.
  const worker = await createHostWorker(
    env,
    host,
    testPolicy({ historyEventsLimit: 2000 }),
    gpu.activities,
    auditDir,
  );
  await worker.runUntil(async () => {
    const client = env.client;
    const healingId = healingWorkflowId(host, 'vllm_oom');
    const hostId = hostCoordinatorWorkflowId(host);
    await skipToUtc(env, 3, 1);
    for (let i = 0; i < 3; i++) await symptom(client, host, 'vllm_oom', { id: `fuzz-base-${i}` });
    await eventually(
      'canary running',
      async () => (await bounded(() => healingState(client, host))).phase === 'canary_running',
    );

    const r = prng(SEED);
    const outcomes = new Map<string, number>();
    let next = 0;
    const lane = async () => {
      while (next < PAYLOADS) {
        next++;
        const outcome = await sendOne(client, r, healingId, hostId);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    console.log(`# seed ${SEED}: ${[...outcomes].map(([k, v]) => `${v} ${k}`).join(', ')}`);

    // Still answering, still holding its canary; then the canary ends the normal way.
    const during = await healingState(client, host);
    assert.equal(during.phase, 'canary_running', 'the canary is still in flight after the storm');
    gpu.openGate();
    const ended = await eventually(
      'canary ended',
      async () => {
        const s = await bounded(() => healingState(client, host));
        return s.lastCanary ? s : undefined;
      },
      60_000,
    );
    assert.ok(
      ['promoted', 'restored'].includes(ended.lastCanary!.outcome),
      `canary ended ${ended.lastCanary!.outcome}`,
    );
    assert.ok(gpu.journal.some((e) => e.action === 'canary:end'));
    const coordinator = await eventually('lease released', async () => {
      const s = await bounded(() => hostState(client, host));
      return s.lease === null ? s : undefined;
    });
    assert.equal(coordinator.restoreFailure, null);
    console.log(`# queries past their ${QUERY_DEADLINE_MS} ms deadline, asked again: ${unanswered}`);

    // Nothing accepted was lost: a last valid symptom counts.
    const last = await symptom(client, host, 'vllm_oom', { id: 'fuzz-final' });
    assert.equal(last.outcome, 'counted');
    assert.ok(ended.totals.rejected > 0, 'the hostile symptoms were counted as rejected');

    for (const id of [healingId, hostId]) {
      assert.equal(
        (await client.workflow.getHandle(id).describe()).status.name,
        'RUNNING',
        `${id} still running`,
      );
      assert.deepEqual(await taskFailures(client, id), [], `workflow tasks failed in ${id}`);
    }
  });
});

test('hostile start inputs never leave a workflow stuck on a failing task', async () => {
  const host = uniqueHost('fuzz-start');
  const worker = await createHostWorker(env, host, testPolicy(), scriptedGpu().activities, auditDir);
  await worker.runUntil(async () => {
    const client = env.client;
    const r = prng(SEED + 1);
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const workflowType = i % 4 === 3 ? 'HostCoordinatorWorkflow' : 'HealingWorkflow';
      const workflowId =
        workflowType === 'HostCoordinatorWorkflow'
          ? `${hostCoordinatorWorkflowId(host)}${i === 3 ? '' : `-x${i}`}`
          : i % 5 === 0
            ? `kloros-healing/${host}/not a kind ${i}`
            : healingWorkflowId(host, `fuzz_${i}`);
      ids.push(workflowId);
      if (i % 3 === 0) {
        await client.workflowService.startWorkflowExecution({
          namespace: client.options.namespace,
          workflowId,
          workflowType: { name: workflowType },
          taskQueue: { name: hostTaskQueue(host) },
          input: { payloads: [rawPayload(r)] },
          identity: 'fuzzer',
          requestId: `fuzz-start-${i}`,
        });
      } else {
        await client.workflow.start(workflowType, {
          workflowId,
          taskQueue: hostTaskQueue(host),
          args: [i % 3 === 1 ? hostileMessage(r) : { host, kind: `fuzz_${i}`, carried: hostileValue(r) }],
        });
      }
    }
    for (const workflowId of ids) {
      // Give the worker the first task; then the run is either running normally or ended with a reason.
      await eventually(`${workflowId} handled`, async () => {
        const history = await client.workflow.getHandle(workflowId).fetchHistory();
        return (history.events ?? []).some(
          (e) =>
            e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED ||
            e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        );
      });
      assert.deepEqual(await taskFailures(client, workflowId), [], `workflow tasks failed in ${workflowId}`);
    }
  });
});
