// Counters that never go down, whatever happens to the workflows they are read from. Each workflow
// (a "source") reports its carried totals; the ledger keeps, per source and series, the last value seen
// and a base that absorbs any drop:
//  - the same chain of runs (continue-as-new, a replay, a worker restart) reports the same or higher
//    totals: the value is taken as it is, so nothing is counted twice;
//  - a new chain (the workflow was terminated and started afresh: its first run id changed) starts at 0:
//    what the old chain had counted is moved into the base, and the new counts add to it;
//  - a drop within one chain (a Temporal reset to an earlier point) keeps the highest value seen;
//  - a source that is no longer running keeps contributing what it had counted.
// Pure; the exporter stores the state in the host's data directory so a restarted worker continues.
import { type Labels, type Sample, type SourceCounts, seriesKey } from './derive.js';

export interface LedgerSeries {
  name: string;
  labels: Labels;
  /** Counts of earlier chains (or lost by a reset), carried so the total never goes down. */
  base: number;
  /** The value the source reported last. */
  last: number;
}

export interface CounterLedgerState {
  version: 1;
  sources: Record<string, { epoch: string; series: Record<string, LedgerSeries> }>;
}

export function emptyCounterLedger(): CounterLedgerState {
  return { version: 1, sources: {} };
}

/** Record one source's current totals; returns the new state and whether anything changed. */
export function observeSource(
  state: CounterLedgerState,
  counts: SourceCounts,
): { state: CounterLedgerState; changed: boolean } {
  const previous = state.sources[counts.source];
  const newChain = previous !== undefined && previous.epoch !== counts.epoch;
  const series: Record<string, LedgerSeries> = {};
  let changed = previous === undefined || newChain;
  // Series the source reported before keep their place (a new chain reports fewer keys at first).
  for (const [key, s] of Object.entries(previous?.series ?? {})) {
    series[key] = newChain ? { ...s, base: s.base + s.last, last: 0 } : { ...s };
  }
  for (const sample of counts.samples) {
    const key = seriesKey(sample.name, sample.labels);
    const value = Number.isFinite(sample.value) && sample.value > 0 ? sample.value : 0;
    const s = series[key] ?? { name: sample.name, labels: { ...sample.labels }, base: 0, last: 0 };
    if (value < s.last) {
      s.base += s.last - value;
      changed = true;
    } else if (value !== s.last) {
      changed = true;
    }
    s.last = value;
    series[key] = s;
  }
  return {
    state: { ...state, sources: { ...state.sources, [counts.source]: { epoch: counts.epoch, series } } },
    changed,
  };
}

/** Every counter series summed over all sources, current and past. */
export function ledgerTotals(state: CounterLedgerState): Sample[] {
  const totals = new Map<string, Sample>();
  for (const source of Object.values(state.sources)) {
    for (const [key, s] of Object.entries(source.series)) {
      const t = totals.get(key);
      if (t) t.value += s.base + s.last;
      else totals.set(key, { name: s.name, labels: { ...s.labels }, value: s.base + s.last });
    }
  }
  return [...totals.values()];
}

/** Kinds any source ever reported symptoms for. */
export function knownKinds(state: CounterLedgerState, symptomsMetric: string): string[] {
  const kinds = new Set<string>();
  for (const source of Object.values(state.sources))
    for (const s of Object.values(source.series))
      if (s.name === symptomsMetric && s.labels.kind !== undefined) kinds.add(s.labels.kind);
  return [...kinds].sort();
}

/** Read a stored ledger; anything unreadable is reported, never trusted. */
export function parseCounterLedger(text: string): CounterLedgerState {
  const data = JSON.parse(text) as Partial<CounterLedgerState>;
  if (data.version !== 1 || typeof data.sources !== 'object' || data.sources === null) {
    throw new Error('not a version-1 counter ledger');
  }
  for (const [id, source] of Object.entries(data.sources)) {
    if (typeof source?.epoch !== 'string' || typeof source.series !== 'object' || source.series === null)
      throw new Error(`source ${id}: expected {epoch, series}`);
    for (const [key, s] of Object.entries(source.series)) {
      if (
        typeof s?.name !== 'string' ||
        typeof s.labels !== 'object' ||
        !Number.isFinite(s.base) ||
        !Number.isFinite(s.last)
      )
        throw new Error(`source ${id}, series ${key}: expected {name, labels, base, last}`);
    }
  }
  return data as CounterLedgerState;
}
