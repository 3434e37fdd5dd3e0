// Every metric the GPU-host worker exports: names, types and labels in one place, so the exporter,
// the alert rules, the Grafana dashboard and their tests agree. The first seven are the original
// design's names and types (../shared/design.md: kloros_canary_duration_seconds is the seed's gauge of the
// last canary's duration); the rest are what an operator also needs.
//
// Several vLLM services may run on one GPU host (issue 17), each with a HealingWorkflow per kind: every
// series one of those workflows contributes carries the `service` label (next to `kind` where it has one).
// The host's own figures (budget, cooldown, window, restore latch, lease waits, overrun, the last canary's
// duration and prediction error) stay per host: the host keeps one budget and one canary lease.

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricSpec {
  name: string;
  type: MetricType;
  help: string;
  labels: readonly string[];
  /** No series until there is something measured (a 0 would be read as a value): a gauge of a measurement. */
  absentUntilMeasured?: true;
}

export const METRICS = {
  symptoms: {
    name: 'kloros_symptoms_total',
    type: 'counter',
    help: 'Symptoms counted by the healing workflows, by service and kind (redeliveries and stale events excluded).',
    labels: ['service', 'kind'],
  },
  escalationFlag: {
    name: 'kloros_escalation_flag',
    type: 'gauge',
    help: '1 while the escalation flag of a (service, kind) is armed (canary mode requested), else 0.',
    labels: ['service', 'kind'],
  },
  budgetRemaining: {
    name: 'kloros_gpu_budget_seconds_remaining',
    type: 'gauge',
    help: "Downtime budget left in this host's current or next maintenance window, in seconds.",
    labels: [],
  },
  cooldown: {
    name: 'kloros_gpu_canary_cooldown_seconds',
    type: 'gauge',
    help: 'Seconds until the cooldown after the last canary on this host is over (0 = none).',
    labels: [],
  },
  canaryRuns: {
    name: 'kloros_canary_runs_total',
    type: 'counter',
    help: 'Canaries that ended, by service, result (promoted, restored, restore_failed, cancelled) and mode.',
    labels: ['service', 'result', 'mode'],
  },
  canaryDuration: {
    name: 'kloros_canary_duration_seconds',
    type: 'gauge',
    help: "Duration of this host's last canary, in seconds: from its start to its promotion, or to the end of the restore that followed it (0 before the first).",
    labels: [],
  },
  canaryDowntime: {
    name: 'kloros_canary_downtime_seconds',
    type: 'histogram',
    help: 'Measured service downtime of each canary (restart command to healthy), in seconds, by service.',
    labels: ['service'],
  },
  restoreFail: {
    name: 'kloros_canary_restore_fail_total',
    type: 'counter',
    help: 'Restores of the previous config that failed for good, by service (the host is latched until acknowledged).',
    labels: ['service'],
  },
  restoreOverrun: {
    name: 'kloros_canary_restore_overrun_seconds_total',
    type: 'counter',
    help: 'Downtime spent by restores beyond the budget of their window, in seconds.',
    labels: [],
  },
  restoreFailureLatched: {
    name: 'kloros_restore_failure_latched',
    type: 'gauge',
    help: '1 while a failed restore blocks canaries on this host until an operator acknowledges it.',
    labels: [],
  },
  symptomsRejected: {
    name: 'kloros_symptoms_rejected_total',
    type: 'counter',
    help: 'Symptoms not counted, by service, kind and reason (invalid, duplicate, stale).',
    labels: ['service', 'kind', 'reason'],
  },
  leaseWaits: {
    name: 'kloros_canary_lease_waits_total',
    type: 'counter',
    help: 'Canary lease requests refused for now (another canary holds the host, cooldown, budget), by reason.',
    labels: ['reason'],
  },
  decisionsRefused: {
    name: 'kloros_decisions_refused_total',
    type: 'counter',
    help: 'Decisions refused by the healing workflows (by service) and the host coordinator (service ""), by reason.',
    labels: ['service', 'reason'],
  },
  missedWindows: {
    name: 'kloros_escalation_missed_windows_total',
    type: 'counter',
    help: 'Maintenance windows an armed escalation was offered and that closed with no canary run, by service and kind.',
    labels: ['service', 'kind'],
  },
  predictionError: {
    name: 'kloros_prediction_kv_error_ratio',
    type: 'gauge',
    help: "How far the memory model was off for this host's last canary: (predicted − measured) / measured KV cache, from what vLLM printed when the candidate started.",
    labels: [],
    absentUntilMeasured: true,
  },
  windowOpen: {
    name: 'kloros_gpu_maintenance_window_open',
    type: 'gauge',
    help: "1 while this host's maintenance window is open, else 0.",
    labels: [],
  },
  lastStateRead: {
    name: 'kloros_state_last_read_timestamp_seconds',
    type: 'gauge',
    help: "Unix time this worker last heard from Temporal about its figures (a workflow's report, the reading at start, or a reachability check on scrape): far behind time() means the figures may be stale.",
    labels: [],
  },
} as const satisfies Record<string, MetricSpec>;

export const METRIC_NAMES: readonly string[] = Object.values(METRICS).map((m) => m.name);

/** The label that names the service a series is about (issue 17). */
export const SERVICE_LABEL = 'service';

/** Names of the metrics with a `service` label. */
export const SERVICE_LABELLED: ReadonlySet<string> = new Set(
  (Object.values(METRICS) as MetricSpec[]).filter((m) => m.labels.includes(SERVICE_LABEL)).map((m) => m.name),
);

/** Whether a series (a histogram's `_bucket`, `_sum`, `_count` included) has the `service` label. */
export function seriesHasServiceLabel(seriesName: string): boolean {
  return (
    SERVICE_LABELLED.has(seriesName) || SERVICE_LABELLED.has(seriesName.replace(/_(bucket|sum|count)$/, ''))
  );
}
