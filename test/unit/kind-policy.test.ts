// What a kind may do (issue 13, point 2), its settings, and the advice for hardware faults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kindAction, parseKindActions } from '../../src/domain/kind-policy.js';
import { hardwareAdvice, xidFromText } from '../../src/domain/hardware-advice.js';
import { canonicalKindHint, isValidKind } from '../../src/domain/identifiers.js';

test('built in: vllm_oom heals, gpu_xid alerts, anything else only counts', () => {
  assert.equal(kindAction('vllm_oom', {}), 'heal');
  assert.equal(kindAction('gpu_xid', {}), 'alert');
  assert.equal(kindAction('made_up', {}), 'count');
  assert.equal(kindAction('made_up', { made_up: 'heal' }), 'heal');
  assert.equal(kindAction('vllm_oom', { vllm_oom: 'count' }), 'count', 'an operator may turn healing off');
  assert.equal(kindAction('gpu_xid', { gpu_xid: 'heal' }), 'alert', 'a hardware fault never heals');
});

test('KLR_KIND_ACTIONS: pairs, each refusal says what is wrong', () => {
  assert.deepEqual(parseKindActions(' a_b=heal , c=alert,d=count ', isValidKind), {
    ok: true,
    actions: { a_b: 'heal', c: 'alert', d: 'count' },
  });
  assert.deepEqual(parseKindActions('', isValidKind), { ok: true, actions: {} });
  const bad: [string, RegExp][] = [
    ['vllm_oom', /"vllm_oom" is not kind=action/],
    ['Vllm=heal', /"Vllm" is not a canonical kind/],
    ['x=retune', /"retune" for x is not one of heal, alert, count/],
    ['gpu_xid=heal', /gpu_xid is a hardware fault: it can be alert or count, never heal/],
    ['x=heal,x=count', /x is given twice/],
  ];
  for (const [text, error] of bad) {
    const parsed = parseKindActions(text, isValidKind);
    assert.equal(parsed.ok, false, text);
    if (!parsed.ok) assert.match(parsed.error, error);
  }
});

test('one spelling per kind; the near canonical spelling is suggested', () => {
  for (const ok of ['vllm_oom', 'gpu_xid', 'a', 'kv2_cache']) assert.ok(isValidKind(ok), ok);
  for (const bad of [
    'vllm_oom.',
    'vllm-oom',
    'VLLM_OOM',
    'vllm__oom',
    '_vllm',
    'vllm_',
    '9x',
    'k'.repeat(65),
  ])
    assert.ok(!isValidKind(bad), bad);
  assert.equal(canonicalKindHint('VLLM-OOM.'), 'vllm_oom');
  assert.equal(canonicalKindHint('vllm_oom'), null);
  assert.equal(canonicalKindHint('..'), null);
});

test('hardware advice: the Xid number from kernel and journald lines, NVIDIA’s resolution for it', () => {
  assert.equal(xidFromText('NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.'), 79);
  assert.equal(xidFromText('kernel: NVRM: Xid (0000:03:00): 14, Channel 00000001'), 14);
  assert.equal(xidFromText('no fault here'), null);
  assert.match(
    hardwareAdvice('gpu_xid', 'NVRM: Xid (PCI:0000:3b:00): 48, pid=1'),
    /^Xid 48: double-bit ECC error: drain the host/,
  );
  assert.match(
    hardwareAdvice('gpu_xid', 'Xid 999'),
    /^Xid 999: a hardware fault is never retuned .* NVIDIA's Xid catalog/,
  );
  assert.match(
    hardwareAdvice('ecc_page_retired', undefined),
    /^ecc_page_retired: a hardware fault is never retuned/,
  );
});
