// recordSymptom sends again when the update reached a run in the instant it continued as new (NOT_FOUND),
// but only a symptom with an id (a redelivery of it counts once), and only a few times. The race itself is
// hit by test/adversarial/workflow-fuzz.test.ts on a real server; here the client's answers are scripted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { recordSymptom } from '../../src/temporal/symptoms.js';

const NOT_FOUND = Object.assign(new Error('5 NOT_FOUND: MultiOperation could not be executed'), { code: 5 });
const ANSWER = {
  outcome: 'counted',
  count24h: 1,
  threshold: 3,
  armed: false,
  flagExpiresAt: null,
  mode: 'predictive',
};

function scripted(answers: unknown[]) {
  let calls = 0;
  const client = {
    workflow: {
      executeUpdateWithStart: async () => {
        const next = answers[Math.min(calls++, answers.length - 1)];
        if (next instanceof Error) throw next;
        return next;
      },
    },
  } as unknown as Client;
  return { client, calls: () => calls };
}

test('a symptom with an id is sent again after the run closed under it', async () => {
  const { client, calls } = scripted([NOT_FOUND, ANSWER]);
  assert.deepEqual(await recordSymptom(client, 'gpu-1', { kind: 'vllm_oom', id: 'a' }), ANSWER);
  assert.equal(calls(), 2);
});

test('a wrapped NOT_FOUND (the SDK puts the gRPC error in cause) is the same race', async () => {
  const wrapped = Object.assign(new Error('service error'), { cause: NOT_FOUND });
  const { client, calls } = scripted([wrapped, ANSWER]);
  await recordSymptom(client, 'gpu-1', { kind: 'vllm_oom', id: 'a' });
  assert.equal(calls(), 2);
});

test('a symptom without an id, another error, or a third NOT_FOUND is not sent again', async () => {
  const noId = scripted([NOT_FOUND, ANSWER]);
  await assert.rejects(recordSymptom(noId.client, 'gpu-1', { kind: 'vllm_oom' }), /NOT_FOUND/);
  assert.equal(noId.calls(), 1);
  const other = scripted([Object.assign(new Error('unavailable'), { code: 14 }), ANSWER]);
  await assert.rejects(recordSymptom(other.client, 'gpu-1', { kind: 'vllm_oom', id: 'a' }), /unavailable/);
  assert.equal(other.calls(), 1);
  const always = scripted([NOT_FOUND]);
  await assert.rejects(recordSymptom(always.client, 'gpu-1', { kind: 'vllm_oom', id: 'a' }), /NOT_FOUND/);
  assert.equal(always.calls(), 3);
});
