// State views → metric values, pure. Counters come from the totals the workflows carry in their durable
// state (one "source" per workflow, see counter-ledger.ts); gauges from the current views and the real
// clock (a query answers with the time of the workflow's last task, so anything that depends on "now"
// — budget, cooldown, window — is computed here from the stored figures).
// Series of a healing workflow carry its service (`service` label): the report's name, else the worker's
// legacy service's ("" when the worker has none, which Prometheus reads as no label at all).
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
  /** A healing workflow's `service` label (absent for the host coordinator). */
  service?: string;
  samples: Sample[];
}

/**
 * The `service` label of a healing workflow's series: the name it reports; for a report without one (a
 * 0.4 run, or a legacy workflow that has not learnt its name yet) the worker's legacy service, or "".
 */
export function serviceLabel(report: { service?: string | null }, legacyService: string | null): string {
  return typeof report.service === 'string' ? report.service : (legacyService ?? '');
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

/**
 * The counter series of one HealingWorkflow (its kind's symptoms, its canaries, its refusals), labelled
 * with its service (`legacyService` for a report that names none).
 */
export function healingCounts(view: HealingMetricsReport, legacyService: string | null = null): SourceCounts {
  const counters = view.counters ?? emptyHealingCounters();
  const service = serviceLabel(view, legacyService);
  const { kind } = view;
  const samples: Sample[] = [
    { name: METRICS.symptoms.name, labels: { service, kind }, value: view.totals.counted },
    {
      name: METRICS.symptomsRejected.name,
      labels: { service, kind, reason: 'invalid' },
      value: view.totals.rejected,
    },
    {
      name: METRICS.symptomsRejected.name,
      labels: { service, kind, reason: 'duplicate' },
      value: view.totals.duplicates,
    },
    {
      name: METRICS.symptomsRejected.name,
      labels: { service, kind, reason: 'stale' },
      value: view.totals.stale,
    },
  ];
  let restoreFailures = 0;
  for (const [key, n] of Object.entries(counters.canaryRuns)) {
    const [result = 'unknown', mode = 'unknown'] = key.split('|');
    samples.push({ name: METRICS.canaryRuns.name, labels: { service, result, mode }, value: n });
    if (result === 'restore_failed') restoreFailures += n;
  }
  samples.push({ name: METRICS.restoreFail.name, labels: { service }, value: restoreFailures });
  for (const [reason, n] of Object.entries(counters.refused)) {
    samples.push({ name: METRICS.decisionsRefused.name, labels: { service, reason }, value: n });
  }
  samples.push(...histogramSamples(counters.canaryDowntime, { service }));
  samples.push({
    name: METRICS.missedWindows.name,
    labels: { service, kind },
    value: counters.missedWindows ?? 0,
  });
  return { source: view.workflowId, epoch: view.firstRunId, service, samples };
}

/**
 * The counter series of the HostCoordinatorWorkflow (lease refusals, overrun): per host, so its refused
 * decisions carry the service label "" (the coordinator counts refusals by reason only).
 */
export function hostCounts(view: HostMetricsReport): SourceCounts {
  const counters = view.counters ?? emptyHostCounters();
  const samples: Sample[] = [
    { name: METRICS.restoreOverrun.name, labels: {}, value: counters.overrunMs / 1000 },
  ];
  for (const [reason, n] of Object.entries(counters.leaseRefusals)) {
    samples.push({ name: METRICS.decisionsRefused.name, labels: { service: '', reason }, value: n });
    if (LEASE_WAIT_CODES.includes(reason)) {
      samples.push({ name: METRICS.leaseWaits.name, labels: { reason }, value: n });
    }
  }
  return { source: view.workflowId, epoch: view.firstRunId, samples };
}

/** Cumulative `_bucket{le}`, `_sum` (seconds) and `_count` of a carried downtime histogram, with `labels`. */
export function histogramSamples(
  h: { counts: readonly number[]; sumMs: number; count: number },
  labels: Labels = {},
): Sample[] {
  const name = METRICS.canaryDowntime.name;
  const samples: Sample[] = [];
  let cumulative = 0;
  CANARY_DOWNTIME_BUCKETS_SECONDS.forEach((bound, i) => {
    cumulative += h.counts[i] ?? 0;
    samples.push({ name: `${name}_bucket`, labels: { ...labels, le: String(bound) }, value: cumulative });
  });
  samples.push({ name: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count });
  samples.push({ name: `${name}_sum`, labels: { ...labels }, value: h.sumMs / 1000 });
  samples.push({ name: `${name}_count`, labels: { ...labels }, value: h.count });
  return samples;
}

/** A (service, kind) of the host: the labels of its symptom series and escalation flag. */
export interface ServiceKind {
  service: string;
  kind: string;
}

export interface ZeroSeriesInput {
  /** Services whose per-service counters (canaries, restores, refusals, downtime) have a 0 from the start. */
  services: readonly string[];
  /** (service, kind) pairs seen before: their symptom counters have a 0 and stay visible. */
  serviceKinds: readonly ServiceKind[];
}

/**
 * Zero series for every label value the exporter knows, so that a rule or panel using rate() or
 * increase() has a series to work on before the first event, and a kind seen once stays visible.
 */
export function zeroCounterSamples(input: ZeroSeriesInput): Sample[] {
  const samples: Sample[] = [{ name: METRICS.restoreOverrun.name, labels: {}, value: 0 }];
  for (const reason of LEASE_REFUSAL_CODES)
    samples.push({ name: METRICS.decisionsRefused.name, labels: { service: '', reason }, value: 0 });
  for (const reason of LEASE_WAIT_CODES)
    samples.push({ name: METRICS.leaseWaits.name, labels: { reason }, value: 0 });
  for (const service of input.services) {
    samples.push({ name: METRICS.restoreFail.name, labels: { service }, value: 0 });
    samples.push(...histogramSamples({ counts: [], sumMs: 0, count: 0 }, { service }));
    for (const result of CANARY_RESULTS)
      for (const mode of CANARY_MODES)
        samples.push({ name: METRICS.canaryRuns.name, labels: { service, result, mode }, value: 0 });
    for (const reason of HEALING_REFUSAL_CODES)
      samples.push({ name: METRICS.decisionsRefused.name, labels: { service, reason }, value: 0 });
  }
  for (const { service, kind } of input.serviceKinds) {
    samples.push({ name: METRICS.symptoms.name, labels: { service, kind }, value: 0 });
    samples.push({ name: METRICS.missedWindows.name, labels: { service, kind }, value: 0 });
    for (const reason of SYMPTOM_REJECTION_REASONS)
      samples.push({ name: METRICS.symptomsRejected.name, labels: { service, kind, reason }, value: 0 });
  }
  return samples;
}

export interface GaugeInput {
  /** What this host's running healing workflows last reported. */
  healing: readonly HealingMetricsReport[];
  /** (service, kind) pairs seen before (their flag reads 0 while no workflow of theirs runs). */
  known: readonly ServiceKind[];
  /** The `service` label of a report that names no service (see serviceLabel); default null (""). */
  legacyService?: string | null;
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

  const armed = new Map<string, ServiceKind & { on: boolean }>();
  const flag = (service: string, kind: string, on: boolean) => {
    const key = `${service}\u0000${kind}`;
    armed.set(key, { service, kind, on: (armed.get(key)?.on ?? false) || on });
  };
  for (const { service, kind } of input.known) flag(service, kind, false);
  for (const view of input.healing)
    flag(serviceLabel(view, input.legacyService ?? null), view.kind, view.armed);

  return [
    ...[...armed.values()]
      .sort((a, b) => a.service.localeCompare(b.service) || a.kind.localeCompare(b.kind))
      .map(({ service, kind, on }) => ({
        name: METRICS.escalationFlag.name,
        labels: { service, kind },
        value: on ? 1 : 0,
      })),
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
