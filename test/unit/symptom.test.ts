import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventTimeMs, parseSymptom } from '../../src/domain/symptom.js';

describe('symptom payload', () => {
  test('accepts a full payload and normalises nothing it should not', () => {
    const r = parseSymptom({
      kind: 'vllm_oom',
      eventTime: '2026-11-28T03:04:05Z',
      id: 'file:/var/log/vllm.log:1234',
      source: 'observer',
      details: {
        deficitMb: 512,
        allocMb: 1024.5,
        freeMb: 0,
        totalMb: 81559,
        family: 'torch_oom',
        gpu: 0,
        text: 'CUDA out of memory.',
      },
    });
    assert.ok(r.ok);
    assert.equal(eventTimeMs(r.symptom, 0), Date.UTC(2026, 10, 28, 3, 4, 5));
  });

  test('event time: missing means receive time; epoch ms accepted', () => {
    const a = parseSymptom({ kind: 'vllm_oom' });
    const b = parseSymptom({ kind: 'vllm_oom', eventTime: 1_700_000_000_000 });
    assert.ok(a.ok && b.ok);
    assert.equal(eventTimeMs(a.symptom, 42), 42);
    assert.equal(eventTimeMs(b.symptom, 42), 1_700_000_000_000);
  });

  const bad: [string, unknown, RegExp][] = [
    ['no kind', {}, /^kind: expected a symptom kind/],
    ['kind with a slash', { kind: 'a/b' }, /^kind: expected/],
    ['kind with ..', { kind: 'a..b' }, /^kind: expected/],
    ['kind with a space', { kind: 'vllm oom' }, /^kind: expected/],
    ['upper-case kind', { kind: 'VLLM' }, /^kind: expected/],
    ['number kind', { kind: 7 }, /^kind: expected/],
    ['negative size', { kind: 'k', details: { allocMb: -1 } }, /^details\.allocMb: expected a size ≥ 0 MiB$/],
    [
      'absurd size',
      { kind: 'k', details: { allocMb: 1e15 } },
      /^details\.allocMb: expected a size ≤ .* \(is the unit bytes/,
    ],
    ['NaN size', { kind: 'k', details: { allocMb: Number.NaN } }, /^details\.allocMb/],
    [
      'string size',
      { kind: 'k', details: { deficitMb: '512' } },
      /^details\.deficitMb: expected a number of MiB/,
    ],
    ['unknown top-level key', { kind: 'k', colour: 1 }, /^payload: unknown field\(s\) "colour"/],
    ['unknown detail key', { kind: 'k', details: { bytes: 1 } }, /^details: unknown field\(s\) "bytes"/],
    ['bad time text', { kind: 'k', eventTime: 'yesterday' }, /^eventTime: expected an ISO 8601/],
    ['time without zone', { kind: 'k', eventTime: '2026-11-28T03:04:05' }, /^eventTime/],
    ['fractional epoch', { kind: 'k', eventTime: 1.5 }, /^eventTime/],
    ['empty id', { kind: 'k', id: '' }, /^id: expected a non-empty id/],
    ['huge id', { kind: 'k', id: 'x'.repeat(201) }, /^id: expected at most 200 characters/],
    ['control characters', { kind: 'k', source: 'a\u0007b' }, /^source: control characters are not allowed/],
    [
      'huge text',
      { kind: 'k', details: { text: 'x'.repeat(2001) } },
      /^details\.text: expected at most 2000/,
    ],
    ['not an object', 'vllm_oom', /^payload: /],
    ['null', null, /^payload: /],
    ['array', [{ kind: 'k' }], /^payload: /],
  ];
  for (const [name, payload, message] of bad) {
    test(`rejects ${name}`, () => {
      const r = parseSymptom(payload);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.error, message);
    });
  }
});
