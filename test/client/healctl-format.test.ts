// The pure formatting behind healctl's output: tables, relative times, state text, config diffs, symptom
// arguments and the change key of `watch`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTable, relativeTime, timeWithRelative, utcStamp } from '../../src/client/cli/format.js';
import { diffConfigKeys, formatKeyChanges } from '../../src/client/cli/config-diff.js';
import {
  armedText,
  formatDecisions,
  formatHealingState,
  formatHostState,
} from '../../src/client/cli/state-text.js';
import { buildSymptom } from '../../src/client/commands/symptom.js';
import { changeKey } from '../../src/client/commands/watch.js';
import { UsageError } from '../../src/client/cli/errors.js';
import { DEFAULT_POLICY } from '../../src/domain/policy.js';
import { decisionOf } from '../../src/domain/decision-log.js';
import type { HostStateView } from '../../src/workflows/host-coordinator-messages.js';
import type { HealingStateView } from '../../src/workflows/healing-messages.js';

const NOW = Date.parse('2026-11-28T12:00:00Z');

test('tables align columns and trim the last one', () => {
  assert.equal(
    formatTable(
      ['HOST', 'KIND', 'ARMED'],
      [
        ['gpu-1', 'vllm_oom', 'yes'],
        ['gpu-10', 'kv', 'no'],
      ],
    ),
    'HOST    KIND      ARMED\ngpu-1   vllm_oom  yes\ngpu-10  kv        no\n',
  );
  assert.equal(formatTable(['A', 'B'], [['x', '']]), 'A  B\nx\n');
});

test('-o table cuts a cell longer than the limit with …; without a limit (-o wide) nothing is cut', () => {
  const reason = 'r'.repeat(600);
  const cut = formatTable(['KIND', 'REASON'], [['vllm_oom', reason]], 80);
  assert.equal(cut, `KIND      REASON\nvllm_oom  ${'r'.repeat(79)}…\n`);
  assert.ok(formatTable(['KIND', 'REASON'], [['vllm_oom', reason]]).includes(reason));
});

test('relative times: future, past, now, and a bad input', () => {
  assert.equal(relativeTime(NOW + 5 * 3600_000 + 12 * 60_000, NOW), 'in 5 h 12 m');
  assert.equal(relativeTime('2026-11-28T11:57:00Z', NOW), '3 m ago');
  assert.equal(relativeTime(NOW + 400, NOW), 'now');
  assert.equal(relativeTime('not a time', NOW), 'at an unknown time');
  assert.equal(utcStamp(NOW), '2026-11-28 12:00:00Z');
  assert.equal(timeWithRelative('2026-11-28T15:00:00Z', NOW), '2026-11-28 15:00:00Z (in 3 h)');
  assert.equal(timeWithRelative('garbage', NOW), 'garbage');
});

test('the flag reads armed with its lapse, armed forever, or not armed', () => {
  assert.equal(armedText({ armed: false, flagExpiresAt: null }, NOW), 'not armed');
  assert.equal(armedText({ armed: true, flagExpiresAt: null }, NOW), 'ARMED (does not lapse)');
  assert.equal(
    armedText({ armed: true, flagExpiresAt: '2026-11-28T16:00:00Z' }, NOW),
    'ARMED, lapses 2026-11-28 16:00:00Z (in 4 h)',
  );
});

test('decisions show refusals, repeats and who asked', () => {
  const text = formatDecisions([
    {
      ...decisionOf(
        { code: 'canary_refused_by_host', params: { reason: 'budget 12 s left', refusal: 'budget' } },
        NOW,
      ),
      repeats: 3,
    },
    decisionOf({ code: 'host_paused', params: { reason: 'driver' } }, NOW + 1000, 'alice'),
  ]);
  assert.match(text, /^TIME +ACTION +REPEATS +REASON$/m);
  assert.match(text, /^2026-11-28 12:00:00Z +✗ canary refused +×3 +budget 12 s left$/m);
  assert.match(text, /host paused +driver \(by alice\)$/m);
  assert.equal(formatDecisions([]), 'no decisions yet\n');
});

test('the host view names the latch and what to do about it; budget and cooldown are for now', () => {
  assert.match(formatHostState(null, 'gpu-1', NOW), /no coordinator yet/);
  // The window 11:00-13:00 UTC opened an hour before NOW, and 3 m of its 5 m were charged; the cooldown
  // ends 10 min after NOW. The coordinator's own figures (budgetLeftMs, cooldownLeftMs) are stale on purpose.
  const view: HostStateView = {
    workflowId: 'kloros-host/gpu-1',
    host: 'gpu-1',
    now: new Date(NOW - 3 * 3600_000).toISOString(),
    budgetTotalMs: 300_000,
    budgetLeftMs: 300_000,
    budgetSpentMs: 0,
    overrunMs: 0,
    windowOpensAt: null,
    cooldownUntil: new Date(NOW + 10 * 60_000).toISOString(),
    cooldownLeftMs: 999_999_999,
    lease: null,
    paused: { by: 'bob', reason: 'maintenance', at: new Date(NOW).toISOString() },
    restoreFailure: { kind: 'vllm_oom', message: 'unhealthy', at: new Date(NOW - 60_000).toISOString() },
    ledger: { windowOpensAt: NOW - 3600_000, spentMs: 180_000, overrunMs: 0, canaries: 1 },
    counters: { leaseRefusals: {}, overrunMs: 0 },
    firstRunId: 'r',
    decisions: [],
    policy: {
      ...DEFAULT_POLICY,
      maintenanceWindow: '11:00-13:00',
      maintenanceTimeZone: 'UTC',
      maxDowntimeSeconds: 300,
    },
    runs: 1,
  };
  const text = formatHostState(view, 'gpu-1', NOW);
  assert.match(text, /paused {10}yes, by bob: maintenance/);
  assert.match(
    text,
    /restore failure {1}LATCHED \(vllm_oom, 1 m ago\): unhealthy — .*healctl ack gpu-1 --reason/,
  );
  assert.match(text, /budget {10}2 m left of 5 m in the open window/);
  assert.match(text, /cooldown {8}10 m left \(until 2026-11-28 12:10:00Z\)/);
  assert.match(text, /lease {11}free/);
  // A day later the window that opens resets the budget, and the cooldown is over: no stale "left".
  const later = formatHostState(view, 'gpu-1', NOW + 24 * 3600_000);
  assert.match(later, /budget {10}5 m left of 5 m in the open window/);
  assert.match(later, /cooldown {8}none/);
  assert.match(
    formatHostState({ ...view, policy: null }, 'gpu-1', NOW),
    /budget {10}unknown until the coordinator has loaded its policy/,
  );
});

test('config diffs list changed top-level keys, absent ones included', () => {
  const changes = diffConfigKeys(
    'model: m\ngpu-memory-utilization: 0.85\nmax-model-len: 8192\n',
    'model: m\ngpu-memory-utilization: 0.9\n',
  );
  assert.deepEqual(changes, [
    { key: 'gpu-memory-utilization', from: 0.85, to: 0.9 },
    { key: 'max-model-len', from: 8192, to: undefined },
  ]);
  assert.equal(
    formatKeyChanges(changes ?? []),
    '  gpu-memory-utilization: 0.85 → 0.9\n  max-model-len: 8192 → (absent)',
  );
  assert.equal(diffConfigKeys('- a list', 'x: 1'), null);
});

const opts = { source: 'healctl', detail: [] as string[] };

test('symptom arguments: details from key=value, JSON and MiB options; mistakes are usage errors', () => {
  assert.deepEqual(
    buildSymptom('vllm_oom', { ...opts, detail: ['family=torch_oom', 'gpu=1'], allocMb: '512', id: 'a-1' }),
    {
      kind: 'vllm_oom',
      source: 'healctl',
      id: 'a-1',
      details: { family: 'torch_oom', gpu: 1, allocMb: 512 },
    },
  );
  assert.deepEqual(
    buildSymptom('vllm_oom', { ...opts, details: '{"freeMb":10}', eventTime: '1700000000000' }),
    {
      kind: 'vllm_oom',
      source: 'healctl',
      eventTime: 1_700_000_000_000,
      details: { freeMb: 10 },
    },
  );
  const usage = (o: Parameters<typeof buildSymptom>[1], re: RegExp) =>
    assert.throws(
      () => buildSymptom('vllm_oom', o),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
    );
  usage({ ...opts, detail: ['allocMb'] }, /bad --detail "allocMb": expected key=value/);
  usage({ ...opts, detail: ['colour=red'] }, /details: unknown field\(s\) "colour"/);
  usage({ ...opts, detail: ['allocMb=-1'] }, /details\.allocMb: expected a size ≥ 0 MiB/);
  usage({ ...opts, details: '{nope' }, /--details is not JSON/);
  usage({ ...opts, details: '[1]' }, /--details must be a JSON object/);
  usage({ ...opts, allocMb: 'lots' }, /bad --alloc-mb "lots": expected a number of MiB/);
  usage({ ...opts, eventTime: 'yesterday' }, /eventTime: expected an ISO 8601 date-time/);
});

test('watch sees a change in the state, not in the clock', () => {
  const base = {
    host: 'h',
    healing: [{ now: 'a', count24h: 1, nextWindow: { text: 'in 5 h' } }],
    hostState: { now: 'a', cooldownLeftMs: 5 },
  } as never;
  const later = {
    host: 'h',
    healing: [{ now: 'b', count24h: 1, nextWindow: { text: 'in 4 h' } }],
    hostState: { now: 'b', cooldownLeftMs: 4 },
  } as never;
  const changed = {
    host: 'h',
    healing: [{ now: 'b', count24h: 2, nextWindow: { text: 'in 4 h' } }],
    hostState: null,
  } as never;
  assert.equal(changeKey(base), changeKey(later));
  assert.notEqual(changeKey(base), changeKey(changed));
});

test("status shows the last canary's prediction against vLLM and the running config's calibration", () => {
  const now = Date.parse('2026-11-29T08:00:00Z');
  const view = {
    workflowId: 'kloros-healing/gpu-1/vllm_oom',
    host: 'gpu-1',
    kind: 'vllm_oom',
    next: 'predictive mode',
    phase: 'watching',
    count24h: 1,
    threshold: 3,
    armed: false,
    flagExpiresAt: null,
    forced: null,
    mode: 'predictive',
    nextWindow: {
      openNow: false,
      text: 'window opens 03:00 UTC',
      opensAt: now + 3600_000,
      closesAt: now + 7200_000,
    },
    hostFigures: null,
    attempts: 1,
    maxAttempts: 3,
    lastCanary: {
      at: now - 60_000,
      candidateId: 'gpu-memory-utilization=0.88',
      changes: { 'gpu-memory-utilization': 0.88 },
      outcome: 'promoted',
      reason: 'passed.',
      downtimeMs: 41_000,
      measuredVramMb: 72_000,
      prediction: { predictedKvMb: 10_240, measuredKvMb: 9_840.64, errorRatio: 0.0406 },
    },
    recommendation: {
      at: new Date(now - 30_000).toISOString(),
      basis: 'torch_oom',
      candidates: [],
      calibration: {
        vllmVersion: '0.10.1.1',
        measuredKvMb: 9_840.64,
        measuredKvTokens: 78_720,
        measuredWeightsMb: 15_319,
        predictedKvMb: 8_857,
        predictedWeightsMb: 15_317,
        kvErrorRatio: -0.1,
      },
    },
    decisions: [],
  } as unknown as HealingStateView;
  const text = formatHealingState(view, now);
  assert.match(
    text,
    /\n {2}prediction {6}last canary's KV cache 10\.00 GiB predicted, 9\.61 GiB measured by vLLM \(\+4\.1 %\)\n/,
  );
  assert.match(
    text,
    /\n {2}calibration {5}running config: KV cache 9\.61 GiB measured by vLLM 0\.10\.1\.1, 8\.65 GiB modelled \(−10\.0 %\); candidates are predicted from the measurement\n/,
  );
  const plain = formatHealingState({ ...view, lastCanary: null, recommendation: null }, now);
  assert.doesNotMatch(plain, /prediction|calibration/);
});
