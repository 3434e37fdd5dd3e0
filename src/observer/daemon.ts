// The observer of one GPU host, assembled: its metrics, the delivery (Temporal, or the spool while it is
// away), the log or command that is followed through the detection pipeline, the HTTP door when it is on,
// and /metrics when it is on. stop() ends the source first (its position is saved after the last symptom
// it handed over), then the door, then the delivery (which closes the spool), then /metrics.
import type { Logger } from '../config/logger.js';
import { formatListenAddress } from '../config/metrics-settings.js';
import type { TemporalTarget } from '../config/temporal-connection.js';
import { type MetricsServer, serveMetrics } from '../metrics/exporter.js';
import { type SymptomDelivery, createSymptomDelivery } from './delivery.js';
import { type HttpDoor, startHttpDoor } from './http-door.js';
import { type ObserverMetrics, createObserverMetrics } from './observer-metrics-registry.js';
import type { FollowedLog, ObserverSettings } from './observer-settings.js';
import { observe } from './pipeline.js';
import { CommandSource } from './sources/command-source.js';
import { FileSource } from './sources/file-source.js';
import type { LineSource } from './sources/line-source.js';

export interface RunningObserver {
  delivery: SymptomDelivery;
  door: HttpDoor | null;
  /** `http://127.0.0.1:9466/metrics`, or null when KLR_OBSERVER_METRICS_ADDR is off. */
  metricsUrl: string | null;
  /** Settles when the source ends by itself (a command that exits) or fails, or once stopped. */
  done: Promise<void>;
  stop(): Promise<void>;
}

export async function startObserver(
  settings: ObserverSettings,
  target: TemporalTarget,
  log: Logger,
): Promise<RunningObserver> {
  const metrics = createObserverMetrics({
    sources: settings.logs.map((l) => ({ source: l.source.type, service: l.service })),
    door: !!settings.httpDoor,
  });
  const delivery = await createSymptomDelivery({
    host: settings.host,
    target,
    spoolDir: settings.spoolDir,
    spoolMaxBytes: settings.spoolMaxBytes,
    attemptTimeoutMs: settings.attemptTimeoutMs,
    log: log.child({ part: 'delivery' }),
    events: metrics,
  });
  metrics.readSpool(() => delivery.stats());
  let door: HttpDoor | null = null;
  let metricsServer: MetricsServer | null = null;
  try {
    if (settings.httpDoor) {
      door = await startHttpDoor({
        settings: settings.httpDoor,
        delivery,
        host: settings.host,
        services: settings.services,
        log: log.child({ part: 'http-door' }),
        events: metrics,
      });
    }
    if (settings.metrics) {
      metricsServer = await serveMetrics(metrics.registry, settings.metrics, 'KLR_OBSERVER_METRICS_ADDR');
    }
  } catch (err) {
    await door?.close();
    await delivery.close();
    throw err;
  }
  const stopSource = new AbortController();
  for (const service of settings.unfollowed)
    log.warn(
      { service },
      'this service has no "log:" in the services file: its log is not followed (the HTTP door still takes its symptoms)',
    );
  // One follower per log. The first to fail stops the others (each saves its position) and then fails the
  // whole (the process exits, and its unit starts it again); the delivery closes only after all have ended.
  const followAll = async () => {
    const results = await Promise.allSettled(
      settings.logs.map((followed) =>
        followSource(settings, followed, delivery, metrics, log, stopSource.signal).catch((err: unknown) => {
          stopSource.abort();
          throw err;
        }),
      ),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  const done =
    settings.logs.length > 0
      ? followAll()
      : new Promise<void>((resolve) => stopSource.signal.addEventListener('abort', () => resolve()));
  let stopping: Promise<void> | undefined;
  return {
    delivery,
    door,
    metricsUrl: metricsServer ? `http://${formatListenAddress(metricsServer.address)}/metrics` : null,
    done,
    stop: () =>
      (stopping ??= (async () => {
        stopSource.abort();
        await done.catch(() => undefined);
        await door?.close();
        await delivery.close();
        // Last, so that a scrape during the stop still sees the final counts.
        await metricsServer?.close();
      })()),
  };
}

/**
 * Follows one log through the detection pipeline into the delivery, each incident for the log's service,
 * until `signal` aborts (or a command source ends for good). The pipeline moves the saved file position
 * past an incident only once the delivery has accepted it (delivered or spooled), so a crash re-reads,
 * never skips.
 */
async function followSource(
  settings: ObserverSettings,
  followed: FollowedLog,
  delivery: SymptomDelivery,
  metrics: ObserverMetrics,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  const spec = followed.source;
  const { service, workflowService } = followed;
  const sourceLog = log.child({ part: 'source', ...(service !== '' ? { service } : {}) });
  const source: LineSource =
    spec.type === 'file'
      ? new FileSource({
          path: spec.path,
          stateDir: settings.stateDir,
          stateName: followed.stateName,
          fromStart: spec.fromStart,
          // Routine under logrotate, but it explains why line numbers start at 1 again.
          onStartOver: ({ reason, whileStopped }) =>
            sourceLog.info(
              { path: spec.path, reason, whileStopped },
              reason === 'truncated'
                ? 'the followed file was truncated in place; reading it again from its start'
                : 'the followed file was replaced; reading the new one from its start',
            ),
        })
      : new CommandSource({
          argv: spec.argv,
          onExit: ({ exitCode, error, restartInMs }) =>
            sourceLog.warn({ exitCode, error, restartInMs }, 'the followed command exited'),
        });
  sourceLog.info({ source: source.description }, 'following');
  const summary = await observe({
    source,
    host: settings.host,
    service: workflowService,
    // Every incident of this log goes to its service's workflows (null: the legacy ids).
    sink: {
      deliver: async (symptom) => void (await delivery.submit(symptom, settings.host, workflowService)),
      close: async () => undefined,
    },
    signal,
    ...(settings.memoryKind ? { memoryKind: settings.memoryKind } : {}),
    onLine: (line) => metrics.lineRead(spec.type, line.truncated === true, service),
    onDetected: (incident) => metrics.incidentDetected(incident.kind, incident.family, service),
    onIncident: (incident, symptom) =>
      sourceLog.info(
        { kind: incident.kind, family: incident.family, line: incident.line, id: symptom.id },
        'incident',
      ),
  });
  sourceLog.info({ ...summary, source: source.description }, 'stopped following');
}
