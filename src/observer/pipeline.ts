// Source → detector → sink. A source position is persisted only once the sink has accepted every
// incident read up to it, so a crash re-reads lines (harmless: ids come from positions) and never
// skips one.
import { createHash } from 'node:crypto';
import type { SymptomInput } from '../domain/symptom.js';
import { IncidentDetector } from './detector.js';
import type { LineSource, SourceLine } from './sources/line-source.js';
import { incidentToSymptom, serviceSourceKey, symptomId } from './to-symptom.js';
import type { Incident, IncidentFamily, SymptomSink } from './types.js';

export interface ObserveSummary {
  lines: number;
  bytes: number;
  incidents: number;
  byFamily: Partial<Record<IncidentFamily, number>>;
}

export interface ObserveOptions {
  source: LineSource;
  host: string;
  /** Where symptoms go; none = detect only (dry run). */
  sink?: SymptomSink;
  /** Told of each incident once the sink has accepted it (delivered or spooled). */
  onIncident?: (incident: Incident, symptom: SymptomInput & { id: string }) => void;
  /** Told of each line as it is read, before detection (the observer's metrics count them). */
  onLine?: (line: SourceLine) => void;
  /** Told of each incident as the detector reports it, before it is handed to the sink. */
  onDetected?: (incident: Incident) => void;
  signal?: AbortSignal;
  collapseWindowMs?: number;
  /** The kind of the memory incidents of this source (KLR_OBSERVER_KIND); unset: see DetectorOptions. */
  memoryKind?: string;
  /** Persist the position at least this often while lines flow without incidents (default 1 s). */
  commitEveryMs?: number;
  /**
   * The workflow-id service the source's incidents are for (null or unset: the legacy ids); it is mixed
   * into the symptom ids, so two services' logs never share one.
   */
  service?: string | null;
  /** The clock for lines without timestamps (tests). */
  now?: () => number;
}

export async function observe(opts: ObserveOptions): Promise<ObserveSummary> {
  const { source, host, sink } = opts;
  const now = opts.now ?? Date.now;
  const commitEveryMs = opts.commitEveryMs ?? 1000;
  const detector = new IncidentDetector({
    ...(opts.collapseWindowMs === undefined ? {} : { collapseWindowMs: opts.collapseWindowMs }),
    ...(opts.memoryKind === undefined ? {} : { memoryKind: opts.memoryKind }),
  });
  const summary: ObserveSummary = { lines: 0, bytes: 0, incidents: 0, byFamily: {} };
  let uncommitted: SourceLine | null = null;
  let lastCommit = now();

  const commit = async () => {
    if (!uncommitted) return;
    const line = uncommitted;
    uncommitted = null;
    await source.commit(line);
    lastCommit = now();
  };

  for await (const line of source.lines(opts.signal)) {
    summary.lines += 1;
    summary.bytes += line.bytes;
    opts.onLine?.(line);
    const incident = detector.push({
      text: line.text,
      line: line.line,
      position: line.position,
      arrivalMs: now(),
    });
    if (incident) {
      opts.onDetected?.(incident);
      const key = serviceSourceKey(opts.service ?? null, line.sourceKey);
      const symptom = incidentToSymptom(incident, host, key);
      if (!source.stablePositions) symptom.id = symptomId(host, key, `c${contentKey(line.text)}`);
      // Durable first (delivered or spooled), then reported, then the position moves past it.
      if (sink) await sink.deliver(symptom);
      summary.incidents += 1;
      summary.byFamily[incident.family] = (summary.byFamily[incident.family] ?? 0) + 1;
      opts.onIncident?.(incident, symptom);
      uncommitted = line;
      await commit();
      continue;
    }
    uncommitted = line;
    if (now() - lastCommit >= commitEveryMs) await commit();
  }
  // On an error (thrown above) the last lines are not committed: the next run reads them again.
  await commit();
  return summary;
}

/** Streams replay differently on each run; the line itself (vLLM stamps time and pid) is the identity. */
function contentKey(text: string): string {
  return createHash('sha256').update(text.trim()).digest('hex').slice(0, 20);
}
