// The counter ledger: counters derived from workflow state never count a replay twice and never go
// down, whatever happens to the workflows (continue-as-new, termination and a fresh start, a reset).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type CounterLedgerState,
  emptyCounterLedger,
  knownKinds,
  ledgerTotals,
  observeSource,
  parseCounterLedger,
} from '../../src/metrics/counter-ledger.js';

const NAME = 'kloros_symptoms_total';
const observe = (
  state: CounterLedgerState,
  source: string,
  epoch: string,
  value: number,
  kind = 'vllm_oom',
) => observeSource(state, { source, epoch, samples: [{ name: NAME, labels: { kind }, value }] });
const total = (state: CounterLedgerState, kind = 'vllm_oom') =>
  ledgerTotals(state).find((s) => s.name === NAME && s.labels.kind === kind)?.value;

test('the same chain read again (replay, continue-as-new, restarted worker) is not counted twice', () => {
  let s = emptyCounterLedger();
  s = observe(s, 'wf', 'run-1', 3).state;
  const again = observe(s, 'wf', 'run-1', 3);
  assert.equal(again.changed, false);
  s = observe(again.state, 'wf', 'run-1', 5).state;
  assert.equal(total(s), 5);
  // The stored form survives a restart as it is.
  s = parseCounterLedger(JSON.stringify(s));
  assert.equal(total(observe(s, 'wf', 'run-1', 5).state), 5);
});

test('a workflow terminated and started afresh adds to what the old chain had counted', () => {
  let s = observe(emptyCounterLedger(), 'wf', 'run-1', 4).state;
  s = observe(s, 'wf', 'run-9', 0).state;
  assert.equal(total(s), 4);
  s = observe(s, 'wf', 'run-9', 2).state;
  assert.equal(total(s), 6);
  // Even when the new chain had counted more than the old one before it was first seen.
  s = observe(s, 'wf', 'run-10', 7).state;
  assert.equal(total(s), 13);
});

test('a drop within one chain (a reset to an earlier point) keeps the highest value; new counts add', () => {
  let s = observe(emptyCounterLedger(), 'wf', 'run-1', 10).state;
  s = observe(s, 'wf', 'run-1', 7).state;
  assert.equal(total(s), 10);
  s = observe(s, 'wf', 'run-1', 9).state;
  assert.equal(total(s), 12);
});

test('a workflow that no longer runs keeps contributing; sources of one series are summed', () => {
  let s = observe(emptyCounterLedger(), 'wf-a', 'a', 3).state;
  s = observe(s, 'wf-b', 'b', 2).state;
  assert.equal(total(s), 5);
  assert.equal(total(s), 5, 'wf-a not read again: still counted');
  s = observe(s, 'wf-c', 'c', 1, 'xid').state;
  assert.deepEqual(knownKinds(s, NAME), ['vllm_oom', 'xid']);
});

test('negative or non-finite values are read as 0, never subtract', () => {
  let s = observe(emptyCounterLedger(), 'wf', 'e', 2).state;
  s = observe(s, 'wf', 'e', Number.NaN).state;
  s = observe(s, 'wf', 'e', -5).state;
  assert.equal(total(s), 2);
});

test('a stored ledger that is not one is refused with what is wrong', () => {
  assert.throws(() => parseCounterLedger('{"version":2}'), /version-1/);
  assert.throws(
    () => parseCounterLedger('{"version":1,"sources":{"wf":{"epoch":"e","series":{"k":{"name":"x"}}}}}'),
    /source wf, series k/,
  );
  assert.throws(() => parseCounterLedger('not json'));
});
