// State views → metric values, pure. Counters come from the totals the workflows carry in their durable
// state (one "source" per workflow, see counter-ledger.ts); gauges from the current views and the real
// clock (a query answers with the time of the workflow's last task, so anything that depends on "now"
// — budget, cooldown, window — is computed here from the stored figures).
import { type RefusalCode, hostFiguresAt } from '../domain/host-ledger.js';
import type { HealingPolicy } from '../domain/policy.js';
import {
  CANARY_DOWNTIME_BUCKETS_SECONDS,
  type HealingRefusalCode,
  LEASE_WAIT_CODES,
  emptyHealingCounters,
  emptyHostCounters,
} from '../domain/workflow-counters.js';
import type { CanaryRecord } from '../workflows/healing-messages.js';
import { hostLedgerOf } from '../workflows/host-coordinator-messages.js';
import type { HealingMetricsReport, HostMetricsReport } from '../workflows/metrics-sink.js';
import { METRICS } from './catalog.js';

export type Labels = Record<string, string>;

/** One value of one series: `name` is the series' metric name (a histogram's `_bucket`, `_sum`, `_count`). */
export interface Sample {
  name: string;
  labels: Labels;
  value: number;
}

/** The counter series one workflow contributes, with the identity of its chain of runs. */
export interface SourceCounts {
  /** Workflow id. */
  source: string;
  /** First run id of the chain: when it changes, the workflow started over and counts restarted at 0. */
  epoch: string;
  samples: Sample[];
}

export const CANARY_RESULTS: readonly CanaryRecord['outcome'][] = [
  'promoted',
  'restored',
  'restore_failed',
  'cancelled',
];

export const LEASE_REFUSAL_CODES = [
  'restore_failure_latched',
  'paused',
  'outside_window',
  'busy',
  'cooldown',
  'budget',
  'window_too_short',
  'invalid_request',
  'kind_cannot_heal',
  'host_canary_cap',
] as const satisfies readonly RefusalCode[];

export const HEALING_REFUSAL_CODES = [
  'no_fitting_candidate',
  'window_closing',
  'prediction_failed',
  'lease_unanswered',
  'escalation_gone',
] as const satisfies readonly HealingRefusalCode[];

export const SYMPTOM_REJECTION_REASONS = ['invalid', 'duplicate', 'stale'] as const;

/** Canaries run only in canary mode today; the label is kept from the original design. */
export const CANARY_MODES = ['canary'] as const;

/** The identity of a series: name plus labels in a fixed order. */
export function seriesKey(name: string, labels: Labels): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `${name}{${parts.join(',')}}`;
}

/** The counter series of one HealingWorkflow (its kind's symptoms, its canaries, its refusals). */
export function healingCounts(view: HealingMetricsReport): SourceCounts {
  const counters = view.counters ?? emptyHealingCounters();
  const samples: Sample[] = [
    { name: METRICS.symptoms.name, labels: { kind: view.kind }, value: view.totals.counted },
    {
      name: METRICS.symptomsRejected.name,
      labels: { kind: view.kind, reason: 'invalid' },
      value: view.totals.rejected,
    },
    {
      name: METRICS.symptomsRejected.name,
      labels: { kind: view.kind, reason: 'duplicate' },
      value: view.totals.duplicates,
    },
    {
      name: METRICS.symptomsRejected.name,
      labels: { kind: view.kind, reason: 'stale' },
      value: view.totals.stale,
    },
  ];
  let restoreFailures = 0;
  for (const [key, n] of Object.entries(counters.canaryRuns)) {
    const [result = 'unknown', mode = 'unknown'] = key.split('|');
    samples.push({ name: METRICS.canaryRuns.name, labels: { result, mode }, value: n });
    if (result === 'restore_failed') restoreFailures += n;
  }
  samples.push({ name: METRICS.restoreFail.name, labels: {}, value: restoreFailures });
  for (const [reason, n] of Object.entries(counters.refused)) {
    samples.push({ name: METRICS.decisionsRefused.name, labels: { reason }, value: n });
  }
  samples.push(...histogramSamples(counters.canaryDowntime));
  samples.push({
    name: METRICS.missedWindows.name,
    labels: { kind: view.kind },
    value: counters.missedWindows ?? 0,
  });
  return { source: view.workflowId, epoch: view.firstRunId, samples };
}

/** The counter series of the HostCoordinatorWorkflow (lease refusals, overrun). */
export function hostCounts(view: HostMetricsReport): SourceCounts {
  const counters = view.counters ?? emptyHostCounters();
  const samples: Sample[] = [
    { name: METRICS.restoreOverrun.name, labels: {}, value: counters.overrunMs / 1000 },
  ];
  for (const [reason, n] of Object.entries(counters.leaseRefusals)) {
    samples.push({ name: METRICS.decisionsRefused.name, labels: { reason }, value: n });
    if (LEASE_WAIT_CODES.includes(reason)) {
      samples.push({ name: METRICS.leaseWaits.name, labels: { reason }, value: n });
    }
  }
  return { source: view.workflowId, epoch: view.firstRunId, samples };
}

/** Cumulative `_bucket{le}`, `_sum` (seconds) and `_count` of a carried downtime histogram. */
export function histogramSamples(h: { counts: readonly number[]; sumMs: number; count: number }): Sample[] {
  const name = METRICS.canaryDowntime.name;
  const samples: Sample[] = [];
  let cumulative = 0;
  CANARY_DOWNTIME_BUCKETS_SECONDS.forEach((bound, i) => {
    cumulative += h.counts[i] ?? 0;
    samples.push({ name: `${name}_bucket`, labels: { le: String(bound) }, value: cumulative });
  });
  samples.push({ name: `${name}_bucket`, labels: { le: '+Inf' }, value: h.count });
  samples.push({ name: `${name}_sum`, labels: {}, value: h.sumMs / 1000 });
  samples.push({ name: `${name}_count`, labels: {}, value: h.count });
  return samples;
}

/**
 * Zero series for every label value the exporter knows, so that a rule or panel using rate() or
 * increase() has a series to work on before the first event, and a kind seen once stays visible.
 */
export function zeroCounterSamples(kinds: readonly string[]): Sample[] {
  const samples: Sample[] = [
    { name: METRICS.restoreFail.name, labels: {}, value: 0 },
    { name: METRICS.restoreOverrun.name, labels: {}, value: 0 },
    ...histogramSamples({ counts: [], sumMs: 0, count: 0 }),
  ];
  for (const result of CANARY_RESULTS)
    for (const mode of CANARY_MODES)
      samples.push({ name: METRICS.canaryRuns.name, labels: { result, mode }, value: 0 });
  for (const reason of [...LEASE_REFUSAL_CODES, ...HEALING_REFUSAL_CODES])
    samples.push({ name: METRICS.decisionsRefused.name, labels: { reason }, value: 0 });
  for (const reason of LEASE_WAIT_CODES)
    samples.push({ name: METRICS.leaseWaits.name, labels: { reason }, value: 0 });
  for (const kind of kinds) {
    samples.push({ name: METRICS.symptoms.name, labels: { kind }, value: 0 });
    samples.push({ name: METRICS.missedWindows.name, labels: { kind }, value: 0 });
    for (const reason of SYMPTOM_REJECTION_REASONS)
      samples.push({ name: METRICS.symptomsRejected.name, labels: { kind, reason }, value: 0 });
  }
  return samples;
}

export interface GaugeInput {
  /** What this host's running healing workflows last reported. */
  healing: readonly HealingMetricsReport[];
  /** Kinds seen before (their flag reads 0 while no workflow of theirs runs). */
  knownKinds: readonly string[];
  /** What the coordinator last reported; null while this host has none yet (no lease was ever asked for). */
  host: HostMetricsReport | null;
  /** The worker's own policy: the coordinator's, once it has loaded one, wins. */
  policy: HealingPolicy;
  now: number;
  /** When the worker last heard from Temporal about these figures (epoch ms). */
  lastContact: number;
}

export function gaugeSamples(input: GaugeInput): Sample[] {
  const policy = input.host?.policy ?? input.policy;
  const figures = hostFiguresAt(hostLedgerOf(input.host), policy, input.now);

  // The seed's gauge: how long the host's most recent canary took, start to promotion or to restored.
  const last = input.healing
    .map((v) => v.lastCanary)
    .filter((c): c is CanaryRecord => c !== null)
    .sort((a, b) => b.at - a.at)[0];
  const lastDurationSeconds = last
    ? (last.startedAt !== undefined ? last.at - last.startedAt : last.downtimeMs) / 1000
    : 0;
  // How far the memory model was off for the newest canary whose start printed its KV cache.
  const lastPrediction = input.healing
    .map((v) => v.lastCanary)
    .filter((c): c is CanaryRecord => c != null && c.prediction !== undefined)
    .sort((a, b) => b.at - a.at)[0]?.prediction;

  const armed = new Map<string, boolean>();
  for (const kind of input.knownKinds) armed.set(kind, false);
  for (const view of input.healing) armed.set(view.kind, (armed.get(view.kind) ?? false) || view.armed);

  return [
    ...[...armed.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([kind, on]) => ({ name: METRICS.escalationFlag.name, labels: { kind }, value: on ? 1 : 0 })),
    { name: METRICS.budgetRemaining.name, labels: {}, value: figures.budgetLeftMs / 1000 },
    { name: METRICS.cooldown.name, labels: {}, value: figures.cooldownLeftMs / 1000 },
    { name: METRICS.windowOpen.name, labels: {}, value: figures.windowOpen ? 1 : 0 },
    { name: METRICS.canaryDuration.name, labels: {}, value: lastDurationSeconds },
    ...(lastPrediction
      ? [{ name: METRICS.predictionError.name, labels: {}, value: lastPrediction.errorRatio }]
      : []),
    {
      name: METRICS.restoreFailureLatched.name,
      labels: {},
      value: input.host?.restoreFailure ? 1 : 0,
    },
    { name: METRICS.lastStateRead.name, labels: {}, value: input.lastContact / 1000 },
  ];
}
