// Malformed symptom payloads, each with what its refusal must say: shared by the parser table
// (test/unit/bad-input.test.ts) and the workflow test that sends them through the signal and the update.

const KIND = /^kind: expected a symptom kind of 1-64 characters in lower-case snake case/;

/** [what, payload, the refusal (field named, what is expected)]. */
export const BAD_SYMPTOMS: [string, unknown, RegExp][] = [
  ['missing kind', {}, KIND],
  ['a string, not an object', 'vllm_oom', /^payload: .*expected object, received string$/],
  ['null', null, /^payload: .*expected object, received null$/],
  ['a number', 42, /^payload: .*expected object, received number$/],
  ['a list', ['vllm_oom'], /^payload: .*expected object, received array$/],
  ['kind of the wrong type', { kind: 5 }, KIND],
  ['kind with /', { kind: 'vllm/oom' }, KIND],
  ['kind ..', { kind: '..' }, KIND],
  ['kind with .. inside', { kind: 'a..b' }, KIND],
  ['kind ../etc/passwd', { kind: '../etc/passwd' }, KIND],
  ['kind with a space', { kind: 'vllm oom' }, KIND],
  ['kind in capitals', { kind: 'VLLM_OOM' }, KIND],
  ['kind of 65 characters', { kind: 'k'.repeat(65) }, KIND],
  ['unknown key', { kind: 'vllm_oom', colour: 'red' }, /^payload: unknown field\(s\) "colour"$/],
  ['unknown detail', { kind: 'vllm_oom', details: { weird: 1 } }, /^details: unknown field\(s\) "weird"$/],
  ['details not an object', { kind: 'vllm_oom', details: 'big' }, /^details: .*expected object/],
  [
    'negative size',
    { kind: 'vllm_oom', details: { deficitMb: -1 } },
    /^details\.deficitMb: expected a size ≥ 0 MiB$/,
  ],
  [
    'size as text',
    { kind: 'vllm_oom', details: { deficitMb: '512' } },
    /^details\.deficitMb: expected a number of MiB$/,
  ],
  [
    'absurd size (bytes, not MiB)',
    { kind: 'vllm_oom', details: { allocMb: 1e15 } },
    /^details\.allocMb: expected a size ≤ 1073741824 MiB \(is the unit bytes instead of MiB\?\)$/,
  ],
  [
    'size null',
    { kind: 'vllm_oom', details: { freeMb: null } },
    /^details\.freeMb: expected a number of MiB$/,
  ],
  ['fractional GPU index', { kind: 'vllm_oom', details: { gpu: 1.5 } }, /^details\.gpu: .*expected int/],
  ['negative GPU index', { kind: 'vllm_oom', details: { gpu: -1 } }, /^details\.gpu: .*>=0/],
  [
    'zero estimated length',
    { kind: 'vllm_oom', details: { estimatedMaxModelLen: 0 } },
    /^details\.estimatedMaxModelLen: .*>0/,
  ],
  [
    'text over 2000 characters',
    { kind: 'vllm_oom', details: { text: 'x'.repeat(3000) } },
    /^details\.text: expected at most 2000 characters$/,
  ],
  [
    'terminal escape in the text',
    { kind: 'vllm_oom', details: { text: 'oom \u001b[31mred' } },
    /^details\.text: control characters are not allowed$/,
  ],
  [
    'NUL in the family',
    { kind: 'vllm_oom', details: { family: 'torch\u0000oom' } },
    /^details\.family: control characters are not allowed$/,
  ],
  [
    'event time in words',
    { kind: 'vllm_oom', eventTime: 'yesterday' },
    /^eventTime: expected an ISO 8601 date-time with zone/,
  ],
  [
    'event time without a zone',
    { kind: 'vllm_oom', eventTime: '2026-11-28T03:04:05' },
    /^eventTime: expected an ISO 8601 date-time with zone/,
  ],
  ['negative epoch', { kind: 'vllm_oom', eventTime: -1 }, /^eventTime: .*>=0/],
  [
    'fractional epoch',
    { kind: 'vllm_oom', eventTime: 1.5 },
    /^eventTime: expected an ISO 8601 date-time .* or epoch milliseconds$/,
  ],
  [
    'event time a boolean',
    { kind: 'vllm_oom', eventTime: true },
    /^eventTime: expected an ISO 8601 date-time .* or epoch milliseconds$/,
  ],
  ['empty id', { kind: 'vllm_oom', id: '' }, /^id: expected a non-empty id$/],
  [
    'id of 201 characters',
    { kind: 'vllm_oom', id: 'i'.repeat(201) },
    /^id: expected at most 200 characters$/,
  ],
  ['id a number', { kind: 'vllm_oom', id: 5 }, /^id: expected a string$/],
  ['line break in the id', { kind: 'vllm_oom', id: 'a\nb' }, /^id: tabs and line breaks are not allowed$/],
  [
    'tab in the source',
    { kind: 'vllm_oom', source: 'obs\terver' },
    /^source: tabs and line breaks are not allowed$/,
  ],
  [
    'bell in the source',
    { kind: 'vllm_oom', source: 'obs\u0007erver' },
    /^source: control characters are not allowed$/,
  ],
  // Issue 13: one spelling per kind, with the canonical one suggested.
  ['kind with a trailing dot', { kind: 'vllm_oom.' }, /^kind: expected .*; did you mean "vllm_oom"\?$/],
  ['kind with a dash', { kind: 'vllm-oom' }, /^kind: expected .*; did you mean "vllm_oom"\?$/],
  ['kind with a double underscore', { kind: 'vllm__oom' }, /^kind: expected .*; did you mean "vllm_oom"\?$/],
  ['kind starting with a digit', { kind: '9vllm' }, /^kind: expected .*; did you mean "vllm"\?$/],
  // Issue 13: event times JavaScript cannot write as a date.
  [
    'epoch beyond the year 9999',
    { kind: 'vllm_oom', eventTime: 9_000_000_000_000_000 },
    /^eventTime: expected epoch milliseconds no later than the year 9999$/,
  ],
  // Issue 13: text that reads differently from what it is.
  [
    'right-to-left override in the id',
    { kind: 'vllm_oom', id: 'obs/\u202Egpu-1' },
    /^id: bidirectional control characters \(e\.g\. U\+202E\) are not allowed$/,
  ],
  [
    'zero-width space in the source',
    { kind: 'vllm_oom', source: 'obs\u200Bserver' },
    /^source: invisible format characters \(e\.g\. U\+200B\) are not allowed$/,
  ],
  [
    'lone surrogate in the text',
    { kind: 'vllm_oom', details: { text: 'oom \uD800 here' } },
    /^details\.text: expected well-formed Unicode \(a lone surrogate was found\)$/,
  ],
];
