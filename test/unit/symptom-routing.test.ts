// The client helpers name the workflow and task queue after the host and kind: a bad one is refused
// before anything reaches Temporal (no workflow called `kloros-healing/h/../x` is ever started).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { healingStartOptions, recordSymptom, signalSymptom } from '../../src/temporal/symptoms.js';

/** A client that fails the test if any call gets through to it. */
const untouchable = new Proxy({} as Client, {
  get(_, key) {
    throw new Error(`the client was used (${String(key)}) before the input was checked`);
  },
});

const BAD: [string, string, unknown, RegExp][] = [
  ['kind with ..', 'gpu-1', '../x', /^kind "\.\.\/x": expected a symptom kind of 1-64 characters/],
  ['kind with /', 'gpu-1', 'a/b', /^kind "a\/b": expected a symptom kind/],
  ['kind with a space', 'gpu-1', 'vllm oom', /^kind "vllm oom": expected a symptom kind/],
  ['kind not a string', 'gpu-1', 7, /^kind 7: expected a symptom kind/],
  ['kind missing', 'gpu-1', undefined, /^kind undefined: expected a symptom kind/],
  ['host with /', 'gpu/1', 'vllm_oom', /^host "gpu\/1": expected a host name of 1-128 characters/],
  ['host ..', '..', 'vllm_oom', /^host "\.\.": expected a host name/],
  ['empty host', '', 'vllm_oom', /^host "": expected a host name/],
];

for (const [what, host, kind, message] of BAD) {
  test(`${what}: refused before the client is used`, async () => {
    assert.throws(() => healingStartOptions(host, kind), { name: 'SymptomAddressError', message });
    const symptom = { kind } as { kind: string };
    await assert.rejects(recordSymptom(untouchable, host, symptom), { message });
    await assert.rejects(signalSymptom(untouchable, host, symptom), { message });
  });
}

test('a valid host and kind name the documented workflow and task queue', () => {
  const options = healingStartOptions('gpu-node-1', 'vllm_oom');
  assert.equal(options.workflowId, 'kloros-healing/gpu-node-1/vllm_oom');
  assert.equal(options.taskQueue, 'kloros-healing.gpu-node-1');
});
