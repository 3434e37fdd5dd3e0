// Monotonic totals the workflows carry in their own durable state (and through continue-as-new), so that
// the worker's Prometheus counters are derived from history, never from process memory: a replay
// rebuilds exactly the same numbers, and a restarted worker reports what the previous one did.
// Deterministic and small: fixed buckets, a handful of keys.

/** Upper bounds (seconds) of the canary downtime histogram; a value above the last one is counted in +Inf. */
export const CANARY_DOWNTIME_BUCKETS_SECONDS = [
  1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600,
] as const;

export interface DurationHistogram {
  /** Observations per bucket (not cumulative): index i ≤ bucket i; the extra last slot is +Inf. */
  counts: number[];
  sumMs: number;
  count: number;
}

/** Why a HealingWorkflow held a canary back at the window (the coordinator's refusals are counted there). */
export type HealingRefusalCode =
  'no_fitting_candidate' | 'window_closing' | 'prediction_failed' | 'lease_unanswered' | 'escalation_gone';

export interface HealingCounters {
  /** Canaries that ended, by "<result>|<mode>" (result: promoted, restored, restore_failed, cancelled). */
  canaryRuns: Record<string, number>;
  /** Downtime of each canary itself (restart → healthy, or the time it took when it never got healthy). */
  canaryDowntime: DurationHistogram;
  /** Canary decisions refused by this workflow, by {@link HealingRefusalCode}. */
  refused: Record<string, number>;
  /** Maintenance windows an armed escalation was offered and left without a canary (absent before 0.2). */
  missedWindows?: number;
}

export interface HostCounters {
  /** Lease requests refused by the coordinator, by its refusal code (busy, cooldown, budget, ...). */
  leaseRefusals: Record<string, number>;
  /** Downtime charged beyond the budget of its window, ms, summed over every window. */
  overrunMs: number;
}

/**
 * Refusals that say "not now" — another canary, the cooldown, the budget or the window — rather than
 * "not until a person acts" (paused, restore failure latched) or "never" (invalid request).
 */
export const LEASE_WAIT_CODES: readonly string[] = [
  'busy',
  'cooldown',
  'budget',
  'outside_window',
  'window_too_short',
];

export function emptyHistogram(): DurationHistogram {
  return {
    counts: new Array<number>(CANARY_DOWNTIME_BUCKETS_SECONDS.length + 1).fill(0),
    sumMs: 0,
    count: 0,
  };
}

export function emptyHealingCounters(): HealingCounters {
  return { canaryRuns: {}, canaryDowntime: emptyHistogram(), refused: {}, missedWindows: 0 };
}

export function emptyHostCounters(): HostCounters {
  return { leaseRefusals: {}, overrunMs: 0 };
}

export function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

export function canaryRunKey(result: string, mode: string): string {
  return `${result}|${mode}`;
}

export function observeDuration(histogram: DurationHistogram, ms: number): void {
  const value = Math.max(0, ms);
  const seconds = value / 1000;
  let i = CANARY_DOWNTIME_BUCKETS_SECONDS.findIndex((bound) => seconds <= bound);
  if (i < 0) i = CANARY_DOWNTIME_BUCKETS_SECONDS.length;
  while (histogram.counts.length <= i) histogram.counts.push(0);
  histogram.counts[i] = (histogram.counts[i] ?? 0) + 1;
  histogram.sumMs += value;
  histogram.count += 1;
}

/** Overrun added by one charge: the ledger after minus before, when both belong to the same window. */
export function overrunAddedMs(
  before: { windowOpensAt: number | null; overrunMs: number },
  after: { windowOpensAt: number | null; overrunMs: number },
): number {
  const base = before.windowOpensAt === after.windowOpensAt ? before.overrunMs : 0;
  return Math.max(0, after.overrunMs - base);
}

export function copyHealingCounters(c: HealingCounters): HealingCounters {
  return {
    canaryRuns: { ...c.canaryRuns },
    canaryDowntime: { ...c.canaryDowntime, counts: [...c.canaryDowntime.counts] },
    refused: { ...c.refused },
    missedWindows: c.missedWindows ?? 0,
  };
}

export function copyHostCounters(c: HostCounters): HostCounters {
  return { leaseRefusals: { ...c.leaseRefusals }, overrunMs: c.overrunMs };
}
