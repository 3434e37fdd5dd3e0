// Workflow ids and lease requests that name a service (issue 17): the id is the authority on (host, service,
// kind); a start input that disagrees is set aside with a note; an id or a lease request naming an invalid
// service is refused, whatever is sent.
//   node --import tsx --test test/unit/workflow-input.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readHealingInput } from '../../src/workflows/workflow-input.js';
import { check, leaseRequestSchema } from '../../src/workflows/message-schemas.js';

test('a legacy id and a service id: host, service and kind from the id', () => {
  const legacy = readHealingInput({ host: 'gpu-1', kind: 'vllm_oom' }, 'kloros-healing/gpu-1/vllm_oom');
  assert.deepEqual(legacy, {
    ok: true,
    value: { host: 'gpu-1', service: null, kind: 'vllm_oom', carried: null },
    notes: [],
  });
  const named = readHealingInput(
    { host: 'gpu-1', service: 'llama-70b', kind: 'vllm_oom' },
    'kloros-healing/gpu-1/llama-70b/vllm_oom',
  );
  assert.deepEqual(named, {
    ok: true,
    value: { host: 'gpu-1', service: 'llama-70b', kind: 'vllm_oom', carried: null },
    notes: [],
  });
});

test('a start input that names another service (or none) is set aside with a note; the id wins', () => {
  for (const input of [
    { host: 'gpu-1', service: 'qwen', kind: 'vllm_oom' },
    { host: 'gpu-1', kind: 'vllm_oom' },
  ]) {
    const r = readHealingInput(input, 'kloros-healing/gpu-1/llama/vllm_oom');
    assert.ok(r.ok);
    assert.equal(r.value.service, 'llama');
    assert.deepEqual(r.notes, [
      'start input ignored (expected {"host": "gpu-1", "service": "llama", "kind": "vllm_oom"}); host, service and kind taken from the workflow id',
    ]);
  }
  const legacy = readHealingInput(
    { host: 'gpu-1', service: 'llama', kind: 'vllm_oom' },
    'kloros-healing/gpu-1/vllm_oom',
  );
  assert.ok(legacy.ok);
  assert.equal(legacy.value.service, null);
  assert.deepEqual(legacy.notes, [
    'start input ignored (expected {"host": "gpu-1", "kind": "vllm_oom"}); host and kind taken from the workflow id',
  ]);
});

test('ids with an invalid service, too many parts or a huge part are refused, quoting at most 300 characters', () => {
  for (const id of [
    'kloros-healing/gpu-1/../vllm_oom',
    'kloros-healing/gpu-1/Llama/vllm_oom',
    'kloros-healing/gpu-1/llama /vllm_oom',
    'kloros-healing/gpu-1/a/b/vllm_oom',
    'kloros-healing/gpu-1//vllm_oom',
    'kloros-healing/gpu-1/\u0430/vllm_oom', // a Cyrillic a
    `kloros-healing/gpu-1/${'a'.repeat(10_000)}/vllm_oom`,
  ]) {
    const r = readHealingInput({}, id);
    assert.equal(r.ok, false, id.slice(0, 80));
    if (!r.ok) assert.ok(r.error.length < 600, `a short error for ${id.slice(0, 40)}`);
  }
});

test("a lease request's service: a valid name, null or absent; anything else is refused", () => {
  const base = {
    requestId: 'r-1',
    holderWorkflowId: 'kloros-healing/gpu-1/llama/vllm_oom',
    kind: 'vllm_oom',
    predictedDowntimeMs: 20_000,
  };
  for (const service of ['llama', null, undefined])
    assert.ok(check(leaseRequestSchema, { ...base, service }).ok, String(service));
  for (const service of ['../x', 'Llama', 'a'.repeat(10_000), 42, { name: 'llama' }]) {
    const r = check(leaseRequestSchema, { ...base, service });
    assert.equal(r.ok, false, JSON.stringify(service).slice(0, 40));
    if (!r.ok) assert.ok(r.error.length < 2000);
  }
});
