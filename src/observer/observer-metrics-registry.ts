// The observer's Prometheus registry: the catalog's counters, incremented where each event happens (a line
// read, an incident detected, a symptom delivered or spooled, a failed attempt, a door answer), the spool
// gauges read from the delivery when Prometheus scrapes, kloros_build_info and the process's defaults.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { registerBuildInfo } from '../metrics/build-info.js';
import {
  DELIVERY_ERROR_REASONS,
  type DeliveryErrorReason,
  HTTP_DOOR_CODES,
  type LineSourceType,
  OBSERVER_METRICS,
} from './observer-metrics.js';
import type { MetricSpec } from '../metrics/catalog.js';

/** What the spool gauges show: the delivery's figures at the time of the scrape. */
export interface SpoolFigures {
  pending: number;
  pendingBytes: number;
  maxBytes: number;
}

export interface ObserverMetrics {
  readonly registry: Registry;
  /**
   * A line read from the followed source of `service` (its name; '' when the observer knows none);
   * `truncated` when its rest beyond MAX_LINE_CHARS was dropped.
   */
  lineRead(source: LineSourceType, truncated: boolean, service?: string): void;
  /** An incident the detector recognised in the log of `service` (before it is delivered). */
  incidentDetected(kind: string, family: string, service?: string): void;
  /** A symptom delivered to its workflow. */
  delivered(): void;
  /** A symptom written to the spool. */
  spooled(): void;
  /** A failed delivery attempt, or a symptom that cannot be delivered. */
  failed(reason: DeliveryErrorReason): void;
  /** The HTTP door answered a request with `status`. */
  answered(status: number): void;
  /** The HTTP door closed a connection on arrival (the connection cap). */
  connectionDropped(): void;
  /** Where the spool gauges read from (the delivery exists only after the metrics it reports to). */
  readSpool(figures: () => SpoolFigures): void;
}

export interface ObserverMetricsOptions {
  /** The source the daemon follows, if any (service ''): its series start at 0. */
  source?: LineSourceType | null;
  /** The sources the daemon follows, each for its service: their series start at 0. */
  sources?: readonly { source: LineSourceType; service: string }[];
  /** Whether the HTTP door is on: its series start at 0. */
  door?: boolean;
}

function counter(registry: Registry, spec: MetricSpec): Counter {
  return new Counter({
    name: spec.name,
    help: spec.help,
    labelNames: [...spec.labels],
    registers: [registry],
  });
}

export function createObserverMetrics(options: ObserverMetricsOptions = {}): ObserverMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerBuildInfo(registry);
  const m = OBSERVER_METRICS;
  const linesRead = counter(registry, m.linesRead);
  const linesTruncated = counter(registry, m.linesTruncated);
  const incidents = counter(registry, m.incidents);
  const delivered = counter(registry, m.delivered);
  const spooled = counter(registry, m.spooled);
  const deliveryErrors = counter(registry, m.deliveryErrors);
  const doorRequests = counter(registry, m.doorRequests);
  const doorDropped = counter(registry, m.doorConnectionsDropped);

  // Series that exist from the start (0), so that rate() and increase() see the first event. Incidents
  // have none until the first one: their kinds depend on the log.
  const followed = [...(options.sources ?? [])];
  if (options.source) followed.push({ source: options.source, service: '' });
  for (const { source, service } of followed) {
    linesRead.inc({ source, service }, 0);
    linesTruncated.inc({ source, service }, 0);
  }
  for (const reason of DELIVERY_ERROR_REASONS) deliveryErrors.inc({ reason }, 0);
  if (options.door) for (const code of HTTP_DOOR_CODES) doorRequests.inc({ code: String(code) }, 0);

  let spool: (() => SpoolFigures) | null = null;
  const spoolGauge = (spec: MetricSpec, value: (f: SpoolFigures) => number) =>
    new Gauge({
      name: spec.name,
      help: spec.help,
      registers: [registry],
      collect() {
        if (spool) this.set(value(spool()));
      },
    });
  spoolGauge(m.spoolPending, (f) => f.pending);
  spoolGauge(m.spoolPendingBytes, (f) => f.pendingBytes);
  spoolGauge(m.spoolMaxBytes, (f) => f.maxBytes);

  return {
    registry,
    lineRead(source, truncated, service = '') {
      linesRead.inc({ source, service });
      if (truncated) linesTruncated.inc({ source, service });
    },
    incidentDetected(kind, family, service = '') {
      incidents.inc({ kind, family, service });
    },
    delivered: () => delivered.inc(),
    spooled: () => spooled.inc(),
    failed: (reason) => deliveryErrors.inc({ reason }),
    answered: (status) => doorRequests.inc({ code: String(status) }),
    connectionDropped: () => doorDropped.inc(),
    readSpool(figures) {
      spool = figures;
    },
  };
}
