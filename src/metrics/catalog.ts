// Every metric the GPU-host worker exports: names, types and labels in one place, so the exporter,
// the alert rules, the Grafana dashboard and their tests agree. The first seven are the original
// design's names and types (../shared/design.md: kloros_canary_duration_seconds is the seed's gauge of the
// last canary's duration); the rest are what an operator also needs.

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
    help: 'Symptoms counted by the healing workflows, by kind (redeliveries and stale events excluded).',
    labels: ['kind'],
  },
  escalationFlag: {
    name: 'kloros_escalation_flag',
    type: 'gauge',
    help: '1 while the escalation flag of a kind is armed (canary mode requested), else 0.',
    labels: ['kind'],
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
    help: 'Canaries that ended, by result (promoted, restored, restore_failed, cancelled) and mode.',
    labels: ['result', 'mode'],
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
    help: 'Measured service downtime of each canary (restart command to healthy), in seconds.',
    labels: [],
  },
  restoreFail: {
    name: 'kloros_canary_restore_fail_total',
    type: 'counter',
    help: 'Restores of the previous config that failed for good (the host is latched until acknowledged).',
    labels: [],
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
    help: 'Symptoms not counted, by kind and reason (invalid, duplicate, stale).',
    labels: ['kind', 'reason'],
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
    help: 'Decisions refused by the healing and host workflows, by reason.',
    labels: ['reason'],
  },
  missedWindows: {
    name: 'kloros_escalation_missed_windows_total',
    type: 'counter',
    help: 'Maintenance windows an armed escalation was offered and that closed with no canary run, by kind.',
    labels: ['kind'],
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
