// The worker's /metrics: every metric of the catalog, with exactly its name, type and labels, valued at
// scrape time from the collector's snapshot (derived from the workflows' reported durable state), plus
// kloros_build_info and prom-client's default process metrics. Counters are prom-client Counters whose collect() sets the
// value from state (reset, then inc by the total): the exposition says `# TYPE … counter`, and the
// value never depends on what this process happened to observe.
import { type Server, createServer } from 'node:http';
import { Counter, Gauge, type Metric, Registry, collectDefaultMetrics } from 'prom-client';
import type { ListenAddress } from '../config/metrics-settings.js';
import { registerBuildInfo } from './build-info.js';
import { METRICS, type MetricSpec } from './catalog.js';
import type { MetricsCollector, MetricsSnapshot } from './collector.js';
import type { Sample } from './derive.js';

const samplesOf = (samples: readonly Sample[], name: string) => samples.filter((s) => s.name === name);

/**
 * A histogram whose buckets, sum and count are the carried ones. prom-client's Histogram can only
 * observe, so this is a metric object of its own, registered like one (the registry only calls get()).
 */
function derivedHistogram(spec: MetricSpec, snapshot: () => Promise<MetricsSnapshot>): Metric {
  const prefix = `${spec.name}_`;
  const metric = {
    name: spec.name,
    help: spec.help,
    type: 'histogram',
    aggregator: 'sum',
    labelNames: [...spec.labels],
    reset() {},
    async get() {
      const snap = await snapshot();
      const values = snap.counters
        .filter((s) => s.name.startsWith(prefix))
        .map((s) => ({ metricName: s.name, labels: s.labels, value: s.value }));
      return { name: spec.name, help: spec.help, type: 'histogram', values, aggregator: 'sum' };
    },
  };
  return metric as unknown as Metric;
}

/** The registry behind /metrics: the catalog's metrics from `collector`, and the process's defaults. */
export function createMetricsRegistry(collector: Pick<MetricsCollector, 'current'>): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerBuildInfo(registry);
  const snapshot = () => collector.current();
  for (const spec of Object.values(METRICS) as MetricSpec[]) {
    const common = { name: spec.name, help: spec.help, labelNames: [...spec.labels], registers: [registry] };
    if (spec.type === 'histogram') {
      registry.registerMetric(derivedHistogram(spec, snapshot));
    } else if (spec.type === 'counter') {
      new Counter({
        ...common,
        async collect() {
          const snap = await snapshot();
          this.reset();
          for (const s of samplesOf(snap.counters, spec.name)) this.inc(s.labels, s.value);
        },
      });
    } else {
      new Gauge({
        ...common,
        async collect() {
          const snap = await snapshot();
          this.reset();
          for (const s of samplesOf(snap.gauges, spec.name)) this.set(s.labels, s.value);
        },
      });
    }
  }
  return registry;
}

export interface MetricsServer {
  /** The address it listens on (the port is the real one when 0 was asked for). */
  address: ListenAddress;
  close(): Promise<void>;
}

/** Serve `GET /metrics` from `registry`; anything else is 404. Fails clearly when the address is taken. */
export async function serveMetrics(
  registry: Registry,
  listen: ListenAddress,
  variable = 'KLR_METRICS_ADDR',
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) =>
        res
          .writeHead(500, { 'content-type': 'text/plain' })
          .end(`metrics unavailable: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `${variable}: cannot listen on ${listen.host}:${listen.port} (${err.code ?? err.message})` +
            (err.code === 'EADDRINUSE' ? '; another process uses that port: choose another or set off' : ''),
        ),
      ),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : listen.port;
  return {
    address: { host: listen.host, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
