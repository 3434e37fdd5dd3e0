// The counter ledger: counters derived from workflow state never count a replay twice and never go
// down, whatever happens to the workflows (continue-as-new, termination and a fresh start, a reset).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type CounterLedgerState,
  emptyCounterLedger,
  knownKinds,
  knownServiceKinds,
  knownServices,
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
  assert.throws(() => parseCounterLedger('{"version":3}'), /version-1 or version-2/);
  assert.throws(
    () => parseCounterLedger('{"version":1,"sources":{"wf":{"epoch":"e","series":{"k":{"name":"x"}}}}}'),
    /source wf, series k/,
  );
  assert.throws(() => parseCounterLedger('not json'));
});

const SVC = 'kloros_canary_runs_total';
const observeService = (state: CounterLedgerState, service: string, value: number, epoch = 'run-1') =>
  observeSource(state, {
    source: 'kloros-healing/gpu-1/vllm_oom',
    epoch,
    service,
    samples: [{ name: SVC, labels: { service, result: 'promoted', mode: 'canary' }, value }],
  }).state;
const byService = (state: CounterLedgerState): Record<string, number> =>
  Object.fromEntries(
    ledgerTotals(state)
      .filter((s) => s.name === SVC)
      .map((s): [string, number] => [s.labels.service ?? '?', s.value]),
  );

test('a workflow whose service label changes: the old label stays, the new one counts what comes after', () => {
  let s = observeService(emptyCounterLedger(), '', 3);
  s = observeService(s, 'vllm', 3);
  assert.deepEqual(byService(s), { '': 3, vllm: 0 });
  s = observeService(s, 'vllm', 5);
  assert.deepEqual(byService(s), { '': 3, vllm: 2 });
  // Back again (a worker given another legacy name): still nothing twice, nothing goes down.
  s = observeService(s, '', 6);
  assert.deepEqual(byService(s), { '': 4, vllm: 2 });
  // A new chain after the change: its counts add.
  s = observeService(s, '', 1, 'run-2');
  assert.deepEqual(byService(s), { '': 5, vllm: 2 });
  // The stored form (negative bases included) survives a restart.
  assert.deepEqual(byService(parseCounterLedger(JSON.stringify(s))), { '': 5, vllm: 2 });
});

/** A ledger as 0.4 stored it: no service labels. */
const V1 = JSON.stringify({
  version: 1,
  sources: {
    'kloros-healing/gpu-1/vllm_oom': {
      epoch: 'run-1',
      series: {
        'kloros_symptoms_total{kind="vllm_oom"}': {
          name: NAME,
          labels: { kind: 'vllm_oom' },
          base: 2,
          last: 5,
        },
        'kloros_canary_downtime_seconds_bucket{le="10"}': {
          name: 'kloros_canary_downtime_seconds_bucket',
          labels: { le: '10' },
          base: 0,
          last: 1,
        },
        'kloros_canary_restore_fail_total{}': {
          name: 'kloros_canary_restore_fail_total',
          labels: {},
          base: 0,
          last: 1,
        },
      },
    },
    'kloros-healing/gpu-1/gpu_xid': {
      epoch: 'run-x',
      series: {
        'kloros_symptoms_total{kind="gpu_xid"}': {
          name: NAME,
          labels: { kind: 'gpu_xid' },
          base: 0,
          last: 1,
        },
      },
    },
    'kloros-host/gpu-1': {
      epoch: 'host-1',
      series: {
        'kloros_decisions_refused_total{reason="busy"}': {
          name: 'kloros_decisions_refused_total',
          labels: { reason: 'busy' },
          base: 0,
          last: 2,
        },
        'kloros_canary_restore_overrun_seconds_total{}': {
          name: 'kloros_canary_restore_overrun_seconds_total',
          labels: {},
          base: 0,
          last: 1.5,
        },
      },
    },
  },
});

test('a 0.4 ledger (version 1) reads as the legacy service’s counts; the same workflows go on counting them', () => {
  let s = parseCounterLedger(V1, 'vllm');
  assert.equal(s.version, 2);
  const totals = (st: CounterLedgerState) =>
    Object.fromEntries(ledgerTotals(st).map((x) => [`${x.name}${JSON.stringify(x.labels)}`, x.value]));
  assert.deepEqual(totals(s), {
    'kloros_symptoms_total{"service":"vllm","kind":"vllm_oom"}': 7,
    'kloros_canary_downtime_seconds_bucket{"service":"vllm","le":"10"}': 1,
    'kloros_canary_restore_fail_total{"service":"vllm"}': 1,
    'kloros_symptoms_total{"service":"vllm","kind":"gpu_xid"}': 1,
    'kloros_decisions_refused_total{"service":"","reason":"busy"}': 2,
    'kloros_canary_restore_overrun_seconds_total{}': 1.5,
  });
  assert.deepEqual(knownServiceKinds(s, NAME), [
    { service: 'vllm', kind: 'gpu_xid' },
    { service: 'vllm', kind: 'vllm_oom' },
  ]);
  assert.deepEqual(knownServices(s), ['vllm']);
  // The legacy workflow reports its carried totals again after the upgrade (as 0.5 labels them): no change.
  const again = observeSource(s, {
    source: 'kloros-healing/gpu-1/vllm_oom',
    epoch: 'run-1',
    service: 'vllm',
    samples: [{ name: NAME, labels: { service: 'vllm', kind: 'vllm_oom' }, value: 5 }],
  });
  assert.equal(again.changed, false, 'the same totals under the same series: nothing counted twice');
  s = observeSource(again.state, {
    source: 'kloros-healing/gpu-1/vllm_oom',
    epoch: 'run-1',
    service: 'vllm',
    samples: [{ name: NAME, labels: { service: 'vllm', kind: 'vllm_oom' }, value: 6 }],
  }).state;
  assert.equal(totals(s)['kloros_symptoms_total{"service":"vllm","kind":"vllm_oom"}'], 8, 'base 2 + 6');
  // A worker with no legacy service: the same counts under service="" (no label in Prometheus).
  assert.equal(
    totals(parseCounterLedger(V1, null))['kloros_symptoms_total{"service":"","kind":"vllm_oom"}'],
    7,
  );
});
