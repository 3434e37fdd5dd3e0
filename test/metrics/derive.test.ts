// State views → metric values: counters from the carried totals, gauges from the views and the clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_POLICY } from '../../src/domain/policy.js';
import {
  emptyHealingCounters,
  emptyHostCounters,
  observeDuration,
  overrunAddedMs,
} from '../../src/domain/workflow-counters.js';
import { METRICS, METRIC_NAMES, type MetricSpec } from '../../src/metrics/catalog.js';
import {
  type Sample,
  gaugeSamples,
  healingCounts,
  histogramSamples,
  hostCounts,
  zeroCounterSamples,
} from '../../src/metrics/derive.js';
import type { HealingStateView } from '../../src/workflows/healing-messages.js';
import type { HostStateView } from '../../src/workflows/host-coordinator-messages.js';

const policy = { ...DEFAULT_POLICY, maintenanceWindow: '03:00-07:00', maintenanceTimeZone: 'UTC' };
const at = (iso: string) => Date.parse(iso);

function healingView(over: Partial<HealingStateView> = {}): HealingStateView {
  return {
    workflowId: 'kloros-healing/gpu-1/vllm_oom',
    host: 'gpu-1',
    kind: 'vllm_oom',
    armed: false,
    totals: { counted: 0, duplicates: 0, stale: 0, rejected: 0 },
    counters: emptyHealingCounters(),
    firstRunId: 'run-a',
    service: 'vllm',
    ...over,
  } as HealingStateView;
}

function hostView(over: Partial<HostStateView> = {}): HostStateView {
  return {
    workflowId: 'kloros-host/gpu-1',
    host: 'gpu-1',
    ledger: { windowOpensAt: null, spentMs: 0, overrunMs: 0, canaries: 0 },
    cooldownUntil: null,
    restoreFailure: null,
    counters: emptyHostCounters(),
    firstRunId: 'host-run-a',
    policy,
    ...over,
  } as HostStateView;
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))?.value;

test('a healing view gives its kind’s symptom totals, canary outcomes, refusals and downtime histogram', () => {
  const counters = emptyHealingCounters();
  counters.canaryRuns = { 'promoted|canary': 2, 'restore_failed|canary': 1 };
  counters.refused = { no_fitting_candidate: 3 };
  observeDuration(counters.canaryDowntime, 800); // ≤ 1 s
  observeDuration(counters.canaryDowntime, 12_000); // ≤ 15 s
  observeDuration(counters.canaryDowntime, 3_600_000); // +Inf only
  const c = healingCounts(
    healingView({ totals: { counted: 7, duplicates: 2, stale: 1, rejected: 4 }, counters }),
  );
  assert.equal(c.source, 'kloros-healing/gpu-1/vllm_oom');
  assert.equal(c.epoch, 'run-a');
  assert.equal(c.service, 'vllm');
  const s = c.samples;
  const service = 'vllm';
  assert.equal(value(s, METRICS.symptoms.name, { service, kind: 'vllm_oom' }), 7);
  assert.equal(value(s, METRICS.symptomsRejected.name, { service, kind: 'vllm_oom', reason: 'invalid' }), 4);
  assert.equal(
    value(s, METRICS.symptomsRejected.name, { service, kind: 'vllm_oom', reason: 'duplicate' }),
    2,
  );
  assert.equal(value(s, METRICS.symptomsRejected.name, { service, kind: 'vllm_oom', reason: 'stale' }), 1);
  assert.equal(value(s, METRICS.canaryRuns.name, { service, result: 'promoted', mode: 'canary' }), 2);
  assert.equal(value(s, METRICS.restoreFail.name, { service }), 1);
  assert.equal(value(s, METRICS.decisionsRefused.name, { service, reason: 'no_fitting_candidate' }), 3);
  assert.equal(value(s, METRICS.missedWindows.name, { service, kind: 'vllm_oom' }), 0);
  const h = METRICS.canaryDowntime.name;
  assert.equal(value(s, `${h}_bucket`, { service, le: '1' }), 1);
  assert.equal(value(s, `${h}_bucket`, { service, le: '10' }), 1);
  assert.equal(value(s, `${h}_bucket`, { service, le: '15' }), 2);
  assert.equal(value(s, `${h}_bucket`, { service, le: '600' }), 2);
  assert.equal(value(s, `${h}_bucket`, { service, le: '+Inf' }), 3);
  assert.equal(value(s, `${h}_count`, { service }), 3);
  assert.equal(value(s, `${h}_sum`, { service }), 3612.8);
  // Every sample of a healing workflow names its service (the catalog's labels, in that order).
  for (const x of s) assert.equal(x.labels.service, 'vllm', `${x.name} ${JSON.stringify(x.labels)}`);
});

test('two services on one host: each workflow’s series carry its own service; the same kind stays apart', () => {
  const a = healingCounts(
    healingView({
      workflowId: 'kloros-healing/gpu-1/llama-70b/vllm_oom',
      service: 'llama-70b',
      totals: { counted: 5, duplicates: 0, stale: 0, rejected: 0 },
    }),
    'vllm',
  );
  const b = healingCounts(
    healingView({
      workflowId: 'kloros-healing/gpu-1/vllm_oom',
      service: 'vllm',
      totals: { counted: 2, duplicates: 0, stale: 0, rejected: 0 },
    }),
    'vllm',
  );
  assert.equal(a.service, 'llama-70b');
  assert.equal(value(a.samples, METRICS.symptoms.name, { service: 'llama-70b', kind: 'vllm_oom' }), 5);
  assert.equal(value(b.samples, METRICS.symptoms.name, { service: 'vllm', kind: 'vllm_oom' }), 2);
  const g = gaugeSamples({
    healing: [
      healingView({ workflowId: a.source, service: 'llama-70b', armed: true }),
      healingView({ workflowId: b.source, service: 'vllm', armed: false }),
    ],
    known: [{ service: 'vllm', kind: 'gpu_xid' }],
    legacyService: 'vllm',
    host: null,
    policy,
    now: 0,
    lastContact: 0,
  });
  const flags = g.filter((x) => x.name === METRICS.escalationFlag.name);
  assert.deepEqual(flags, [
    { name: METRICS.escalationFlag.name, labels: { service: 'llama-70b', kind: 'vllm_oom' }, value: 1 },
    { name: METRICS.escalationFlag.name, labels: { service: 'vllm', kind: 'gpu_xid' }, value: 0 },
    { name: METRICS.escalationFlag.name, labels: { service: 'vllm', kind: 'vllm_oom' }, value: 0 },
  ]);
  // The host's own figures stay per host: no service label.
  for (const name of [
    METRICS.budgetRemaining.name,
    METRICS.cooldown.name,
    METRICS.restoreFailureLatched.name,
  ])
    assert.deepEqual(g.find((x) => x.name === name)?.labels, {}, name);
});

test('a report that names no service (null: not learnt yet; absent: a 0.4 run) gets the legacy service', () => {
  const learning = healingView({ totals: { counted: 3, duplicates: 0, stale: 0, rejected: 0 } });
  (learning as { service: string | null }).service = null;
  const old = healingView({ totals: { counted: 4, duplicates: 0, stale: 0, rejected: 0 } });
  delete (old as { service?: string | null }).service;
  for (const [view, n] of [
    [learning, 3],
    [old, 4],
  ] as const) {
    const c = healingCounts(view, 'vllm');
    assert.equal(c.service, 'vllm');
    assert.equal(value(c.samples, METRICS.symptoms.name, { service: 'vllm', kind: 'vllm_oom' }), n);
    // A worker without a legacy service labels them "" (Prometheus drops an empty label).
    const bare = healingCounts(view);
    assert.equal(bare.service, '');
    assert.equal(value(bare.samples, METRICS.symptoms.name, { service: '', kind: 'vllm_oom' }), n);
    assert.equal(
      value(
        gaugeSamples({
          healing: [{ ...view, armed: true }],
          known: [],
          legacyService: 'vllm',
          host: null,
          policy,
          now: 0,
          lastContact: 0,
        }),
        METRICS.escalationFlag.name,
        { service: 'vllm', kind: 'vllm_oom' },
      ),
      1,
    );
  }
});

test('a view carried from a version without counters reads as zero counters', () => {
  const view = healingView({ totals: { counted: 1, duplicates: 0, stale: 0, rejected: 0 } });
  delete (view as Partial<HealingStateView>).counters;
  const s = healingCounts(view).samples;
  assert.equal(value(s, METRICS.symptoms.name, { service: 'vllm', kind: 'vllm_oom' }), 1);
  assert.equal(value(s, `${METRICS.canaryDowntime.name}_count`, { service: 'vllm' }), 0);
});

test('the coordinator’s refusals count as refused decisions; only the "not now" ones as lease waits', () => {
  const counters = { leaseRefusals: { busy: 2, paused: 1, outside_window: 4 }, overrunMs: 2500 };
  const s = hostCounts(hostView({ counters })).samples;
  assert.equal(value(s, METRICS.restoreOverrun.name), 2.5);
  assert.equal(value(s, METRICS.decisionsRefused.name, { service: '', reason: 'busy' }), 2);
  assert.equal(value(s, METRICS.decisionsRefused.name, { service: '', reason: 'paused' }), 1);
  assert.equal(value(s, METRICS.leaseWaits.name, { reason: 'busy' }), 2);
  assert.equal(value(s, METRICS.leaseWaits.name, { reason: 'outside_window' }), 4);
  assert.equal(value(s, METRICS.leaseWaits.name, { reason: 'paused' }), undefined);
});

test('zero series exist for every counter and known kind before anything happened', () => {
  const names = new Set(
    zeroCounterSamples({ services: ['vllm'], serviceKinds: [{ service: 'vllm', kind: 'vllm_oom' }] }).map(
      (s) => s.name.replace(/_(bucket|sum|count)$/, ''),
    ),
  );
  for (const spec of Object.values(METRICS))
    if (spec.type !== 'gauge') assert.ok(names.has(spec.name), spec.name);
  const gauges = new Set(
    gaugeSamples({
      healing: [],
      known: [{ service: 'vllm', kind: 'vllm_oom' }],
      host: null,
      policy,
      now: 0,
      lastContact: 0,
    }).map((s) => s.name),
  );
  // A measurement's gauge (the prediction error: a 0 would read as a perfect prediction) has none yet.
  const measuredOnly = new Set<string>(
    Object.values(METRICS as Record<string, MetricSpec>)
      .filter((m) => m.absentUntilMeasured)
      .map((m) => m.name),
  );
  assert.deepEqual([...measuredOnly], [METRICS.predictionError.name]);
  for (const name of METRIC_NAMES)
    assert.ok(names.has(name) || gauges.has(name) || measuredOnly.has(name), `${name} has a series`);
});

test('outside the window the budget is the full one; inside it, what the ledger of that window left', () => {
  const before = gaugeSamples({
    healing: [],
    known: [],
    host: null,
    policy,
    now: at('2026-03-01T02:00:00Z'),
    lastContact: 0,
  });
  assert.equal(value(before, METRICS.budgetRemaining.name), 60);
  assert.equal(value(before, METRICS.windowOpen.name), 0);
  assert.equal(value(before, METRICS.cooldown.name), 0);
  assert.equal(value(before, METRICS.restoreFailureLatched.name), 0);

  const opened = at('2026-03-01T03:00:00Z');
  const host = hostView({
    ledger: { windowOpensAt: opened, spentMs: 41_500, overrunMs: 0, canaries: 1 },
    cooldownUntil: '2026-03-01T09:00:00.000Z',
    restoreFailure: { kind: 'vllm_oom', message: 'unhealthy', at: '2026-03-01T03:02:00.000Z' },
  });
  const during = gaugeSamples({
    healing: [],
    known: [],
    host,
    policy,
    now: at('2026-03-01T04:00:00Z'),
    lastContact: 0,
  });
  assert.equal(value(during, METRICS.budgetRemaining.name), 18.5);
  assert.equal(value(during, METRICS.windowOpen.name), 1);
  assert.equal(value(during, METRICS.cooldown.name), 5 * 3600);
  assert.equal(value(during, METRICS.restoreFailureLatched.name), 1);

  // The next night's window: a new budget, even though the ledger still holds last night's spend.
  const next = gaugeSamples({
    healing: [],
    known: [],
    host,
    policy,
    now: at('2026-03-02T03:30:00Z'),
    lastContact: 0,
  });
  assert.equal(value(next, METRICS.budgetRemaining.name), 60);
  assert.equal(value(next, METRICS.cooldown.name), 0);
});

test('the flag is 1 for armed kinds, 0 for kinds seen before whose workflow is not running', () => {
  const g = gaugeSamples({
    healing: [healingView({ kind: 'vllm_oom', armed: true }), healingView({ kind: 'xid', armed: false })],
    known: [
      { service: 'vllm', kind: 'old_kind' },
      { service: 'vllm', kind: 'vllm_oom' },
    ],
    host: null,
    policy,
    now: 0,
    lastContact: 0,
  });
  assert.equal(value(g, METRICS.escalationFlag.name, { service: 'vllm', kind: 'vllm_oom' }), 1);
  assert.equal(value(g, METRICS.escalationFlag.name, { service: 'vllm', kind: 'xid' }), 0);
  assert.equal(value(g, METRICS.escalationFlag.name, { service: 'vllm', kind: 'old_kind' }), 0);
});

test('overrun is added once per charge, and a new window starts from zero', () => {
  assert.equal(
    overrunAddedMs({ windowOpensAt: 1, overrunMs: 500 }, { windowOpensAt: 1, overrunMs: 1500 }),
    1000,
  );
  assert.equal(
    overrunAddedMs({ windowOpensAt: 1, overrunMs: 500 }, { windowOpensAt: 2, overrunMs: 300 }),
    300,
  );
  assert.equal(overrunAddedMs({ windowOpensAt: 1, overrunMs: 500 }, { windowOpensAt: 1, overrunMs: 500 }), 0);
});

test('histogram buckets are cumulative and end with +Inf = count', () => {
  const s = histogramSamples({ counts: [1, 0, 2], sumMs: 9000, count: 4 });
  const buckets = s.filter((x) => x.name.endsWith('_bucket')).map((x) => x.value);
  assert.deepEqual(buckets.slice(0, 4), [1, 1, 3, 3]);
  assert.equal(buckets.at(-1), 4);
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]! >= buckets[i - 1]!);
});

test("the prediction error is the newest canary's whose start printed its KV cache; absent before any", () => {
  const canary = (at: number, errorRatio?: number) => ({
    at,
    candidateId: 'gpu-memory-utilization=0.88',
    changes: { 'gpu-memory-utilization': 0.88 },
    outcome: 'promoted' as const,
    reason: 'passed.',
    downtimeMs: 40_000,
    measuredVramMb: 70_000,
    ...(errorRatio === undefined
      ? {}
      : { prediction: { predictedKvMb: 1000 * (1 + errorRatio), measuredKvMb: 1000, errorRatio } }),
  });
  const g = (healing: HealingStateView[]) =>
    value(
      gaugeSamples({ healing, known: [], host: null, policy, now: 0, lastContact: 0 }),
      METRICS.predictionError.name,
    );
  assert.equal(g([healingView()]), undefined);
  assert.equal(
    g([healingView({ lastCanary: canary(5) })]),
    undefined,
    'a canary whose log printed no figure',
  );
  assert.equal(
    g([
      healingView({ kind: 'a', lastCanary: canary(5, 0.04) }),
      healingView({ kind: 'b', lastCanary: canary(9, -0.12) }),
      healingView({ kind: 'c', lastCanary: canary(12) }),
    ]),
    -0.12,
  );
});
