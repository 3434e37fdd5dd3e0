// Counters that never go down, whatever happens to the workflows they are read from. Each workflow
// (a "source") reports its carried totals; the ledger keeps, per source and series, the last value seen
// and a base that absorbs any drop:
//  - the same chain of runs (continue-as-new, a replay, a worker restart) reports the same or higher
//    totals: the value is taken as it is, so nothing is counted twice;
//  - a new chain (the workflow was terminated and started afresh: its first run id changed) starts at 0:
//    what the old chain had counted is moved into the base, and the new counts add to it;
//  - a drop within one chain (a Temporal reset to an earlier point) keeps the highest value seen;
//  - a source that is no longer running keeps contributing what it had counted;
//  - a healing workflow whose service label changes (a legacy workflow that reported no service name, so
//    the worker's legacy name or "" labelled it, and now reports its own): its series under the old label
//    stay as they were, and the new label counts only what comes after (its base starts at minus the
//    value the old label had reached), so nothing is counted twice and no series goes down.
// Version 2 (issue 17) keys series with the `service` label; a version-1 ledger (0.4, no service labels)
// is read as version 2 with every healing workflow's series labelled with the worker's legacy service
// (the only service of a 0.4 host), so the counts of the previous release go on under the same series.
// Pure; the exporter stores the state in the host's data directory so a restarted worker continues.
import { parseHealingWorkflowId } from '../domain/identifiers.js';
import { SERVICE_LABEL, seriesHasServiceLabel } from './catalog.js';
import { type Labels, type Sample, type ServiceKind, type SourceCounts, seriesKey } from './derive.js';

export interface LedgerSeries {
  name: string;
  labels: Labels;
  /**
   * Counts of earlier chains (or lost by a reset), carried so the total never goes down; negative for a
   * series that took over from another service label (it counts from that label's last value on).
   */
  base: number;
  /** The value the source reported last. */
  last: number;
}

export interface LedgerSource {
  epoch: string;
  /** The `service` label of a healing workflow's series (absent for the host coordinator). */
  service?: string;
  series: Record<string, LedgerSeries>;
}

export interface CounterLedgerState {
  version: 2;
  sources: Record<string, LedgerSource>;
}

export function emptyCounterLedger(): CounterLedgerState {
  return { version: 2, sources: {} };
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
    series[key] = newChain ? { ...s, base: s.base + s.last, last: 0 } : { ...s, labels: { ...s.labels } };
  }
  const relabelled =
    counts.service !== undefined && previous?.service !== undefined && previous.service !== counts.service;
  if (relabelled) {
    // The old label's series stay as they are; the new label goes on from their last values.
    changed = true;
    for (const s of Object.values(series)) {
      if (s.labels[SERVICE_LABEL] !== previous.service) continue;
      const labels = { ...s.labels, [SERVICE_LABEL]: counts.service! };
      const key = seriesKey(s.name, labels);
      const existing = series[key];
      const value = existing ? existing.base + existing.last : 0;
      series[key] = { name: s.name, labels, base: value - s.last, last: s.last };
    }
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
    state: {
      ...state,
      sources: {
        ...state.sources,
        [counts.source]: {
          epoch: counts.epoch,
          ...(counts.service !== undefined ? { service: counts.service } : {}),
          series,
        },
      },
    },
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
  return [...new Set(knownServiceKinds(state, symptomsMetric).map((k) => k.kind))].sort();
}

/** Every (service, kind) any source ever reported symptoms for, ordered by service, then kind. */
export function knownServiceKinds(state: CounterLedgerState, symptomsMetric: string): ServiceKind[] {
  const seen = new Map<string, ServiceKind>();
  for (const source of Object.values(state.sources))
    for (const s of Object.values(source.series))
      if (s.name === symptomsMetric && s.labels.kind !== undefined) {
        const service = s.labels[SERVICE_LABEL] ?? '';
        seen.set(`${service}\u0000${s.labels.kind}`, { service, kind: s.labels.kind });
      }
  return [...seen.values()].sort(
    (a, b) => a.service.localeCompare(b.service) || a.kind.localeCompare(b.kind),
  );
}

/** The service labels of the healing workflows the ledger knows (the coordinator's "" not among them). */
export function knownServices(state: CounterLedgerState): string[] {
  const services = new Set<string>();
  for (const source of Object.values(state.sources)) {
    if (source.service === undefined) continue;
    services.add(source.service);
    for (const s of Object.values(source.series)) {
      const service = s.labels[SERVICE_LABEL];
      if (service !== undefined) services.add(service);
    }
  }
  return [...services].sort();
}

/**
 * Read a stored ledger; anything unreadable is reported, never trusted. A version-1 ledger (0.4: no
 * `service` label) is migrated: each healing workflow's series get the service of its id, or for a legacy
 * id `legacyService` ("" when the worker has none), the coordinator's get "" — exactly the labels this
 * release's reports give the same workflows, so their counts continue and are not counted again.
 */
export function parseCounterLedger(text: string, legacyService: string | null = null): CounterLedgerState {
  const data = JSON.parse(text) as { version?: unknown; sources?: Record<string, LedgerSource> | null };
  if (
    (data.version !== 1 && data.version !== 2) ||
    typeof data.sources !== 'object' ||
    data.sources === null
  ) {
    throw new Error('not a version-1 or version-2 counter ledger');
  }
  for (const [id, source] of Object.entries(data.sources)) {
    if (typeof source?.epoch !== 'string' || typeof source.series !== 'object' || source.series === null)
      throw new Error(`source ${id}: expected {epoch, series}`);
    if (source.service !== undefined && typeof source.service !== 'string')
      throw new Error(`source ${id}: service must be a string`);
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
  if (data.version === 2) return data as CounterLedgerState;
  return migrateFromVersion1(data.sources, legacyService);
}

function migrateFromVersion1(
  sources: Record<string, LedgerSource>,
  legacyService: string | null,
): CounterLedgerState {
  const migrated: Record<string, LedgerSource> = {};
  for (const [id, source] of Object.entries(sources)) {
    const healing = parseHealingWorkflowId(id);
    const service = healing ? (healing.service ?? legacyService ?? '') : '';
    const series: Record<string, LedgerSeries> = {};
    for (const s of Object.values(source.series)) {
      const labels =
        seriesHasServiceLabel(s.name) && s.labels[SERVICE_LABEL] === undefined
          ? { [SERVICE_LABEL]: service, ...s.labels }
          : { ...s.labels };
      // One service for all of a source's series: two version-1 keys never become one.
      series[seriesKey(s.name, labels)] = { name: s.name, labels, base: s.base, last: s.last };
    }
    migrated[id] = { epoch: source.epoch, ...(healing ? { service } : {}), series };
  }
  return { version: 2, sources: migrated };
}
