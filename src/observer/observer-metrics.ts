// Every metric the observer exports on its own /metrics (KLR_OBSERVER_METRICS_ADDR): names, types, labels
// and the fixed label values, in one place, so the registry, the alert rules, the Grafana dashboard and
// their tests agree. Counters count events in this process (they start at 0 with each start, which
// Prometheus' rate() and increase() handle); gauges are read from the spool when Prometheus scrapes.
import type { MetricSpec } from '../metrics/catalog.js';

/** The kinds of source the daemon follows (KLR_OBSERVER_FILE, KLR_OBSERVER_COMMAND). */
export const LINE_SOURCES = ['file', 'command'] as const;
export type LineSourceType = (typeof LINE_SOURCES)[number];

/**
 * Why a delivery attempt failed, or why a symptom could not be delivered at all — a fixed set, never an
 * error's text (which would make a new series of every message):
 * - `connect`: no connection to Temporal could be made (refused, DNS, TLS, the connect timeout);
 * - `deadline`: Temporal did not answer within the attempt's time (KLR_OBSERVER_DELIVERY_TIMEOUT);
 * - `unavailable`: Temporal answered that it is unavailable (starting, overloaded, shutting down);
 * - `auth`: Temporal refused the credentials or the permission (API key, mTLS, namespace);
 * - `other`: any other failure that a retry may cure;
 * - `rejected`: the workflow (its validator) or the server refused the symptom: dead-lettered;
 * - `invalid`: refused before any attempt (bad host, payload, event time): dead-lettered;
 * - `spool_full`: Temporal was away and the spool had no room: refused to the caller.
 * The first five leave the symptom in the spool, to be tried again; the last three end it.
 */
export const DELIVERY_ERROR_REASONS = [
  'connect',
  'deadline',
  'unavailable',
  'auth',
  'other',
  'rejected',
  'invalid',
  'spool_full',
] as const;
export type DeliveryErrorReason = (typeof DELIVERY_ERROR_REASONS)[number];

/** Every status the HTTP door answers with (src/observer/http-door.ts). */
export const HTTP_DOOR_CODES = [200, 202, 400, 401, 404, 405, 413, 415, 429, 500, 503] as const;

export const OBSERVER_METRICS = {
  linesRead: {
    name: 'kloros_observer_lines_read_total',
    type: 'counter',
    help: 'Log lines read from the followed source, by source (file, command) and service ("": none configured).',
    labels: ['source', 'service'],
  },
  linesTruncated: {
    name: 'kloros_observer_lines_truncated_total',
    type: 'counter',
    help: 'Log lines longer than 65536 characters whose rest was dropped before detection, by source and service.',
    labels: ['source', 'service'],
  },
  incidents: {
    name: 'kloros_observer_incidents_total',
    type: 'counter',
    help: 'GPU incidents the detector recognised in the followed log, by symptom kind, message family and service.',
    labels: ['kind', 'family', 'service'],
  },
  delivered: {
    name: 'kloros_observer_symptoms_delivered_total',
    type: 'counter',
    help: 'Symptoms delivered to their HealingWorkflow (directly or from the spool; log and HTTP door alike).',
    labels: [],
  },
  spooled: {
    name: 'kloros_observer_symptoms_spooled_total',
    type: 'counter',
    help: 'Symptoms written to the on-disk spool because Temporal could not be reached (or others waited).',
    labels: [],
  },
  deliveryErrors: {
    name: 'kloros_observer_delivery_errors_total',
    type: 'counter',
    help: 'Failed delivery attempts and undeliverable symptoms, by reason (connect, deadline, unavailable, auth, other, rejected, invalid, spool_full).',
    labels: ['reason'],
  },
  spoolPending: {
    name: 'kloros_observer_spool_pending_symptoms',
    type: 'gauge',
    help: 'Symptoms waiting in the spool for delivery, read from the spool when scraped.',
    labels: [],
  },
  spoolPendingBytes: {
    name: 'kloros_observer_spool_pending_bytes',
    type: 'gauge',
    help: 'Bytes the spooled symptoms take on disk, read from the spool when scraped.',
    labels: [],
  },
  spoolMaxBytes: {
    name: 'kloros_observer_spool_max_bytes',
    type: 'gauge',
    help: 'Most bytes the spool may hold (KLR_OBSERVER_SPOOL_MAX_MB); beyond it symptoms are refused.',
    labels: [],
  },
  doorRequests: {
    name: 'kloros_observer_http_door_requests_total',
    type: 'counter',
    help: 'Requests the HTTP door answered, by HTTP status code (429: over the rate limit).',
    labels: ['code'],
  },
  doorConnectionsDropped: {
    name: 'kloros_observer_http_door_connections_dropped_total',
    type: 'counter',
    help: 'Connections to the HTTP door closed on arrival because KLR_HTTP_DOOR_MAX_CONNECTIONS were open.',
    labels: [],
  },
} as const satisfies Record<string, MetricSpec>;

export const OBSERVER_METRIC_NAMES: readonly string[] = Object.values(OBSERVER_METRICS).map((m) => m.name);
