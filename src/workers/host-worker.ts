// The worker of one GPU host: it runs the healing and coordinator workflows of that host and the
// activities that touch its GPU and its service, on the host's own task queue.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { HostActivities } from '../activities/types.js';
import { createCoordinationActivities } from '../activities/coordination.js';
import type { Settings } from '../config/settings.js';
import type { TemporalTarget } from '../config/temporal-connection.js';
import type { Logger } from '../config/logger.js';
import { hostTaskQueue } from '../domain/identifiers.js';
import { registeredSearchAttributes } from '../temporal/registered-attributes.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../workflows/search-attributes.js';
import { type ListenAddress, formatListenAddress } from '../config/metrics-settings.js';
import { MetricsCollector } from '../metrics/collector.js';
import { type MetricsServer, createMetricsRegistry, serveMetrics } from '../metrics/exporter.js';
import { metricsSinks } from '../metrics/metrics-sinks.js';
import {
  checkTemporalContact,
  temporalStateReader,
  workflowStillRunning,
} from '../metrics/workflow-state.js';

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

/** The workflow bundle's entry: the .ts source under tsx, the compiled .js under dist/. */
export const WORKFLOWS_PATH = fileURLToPath(new URL(`../workflows/index${ext}`, import.meta.url));

/** The payload converter that turns an unreadable payload into a refusable marker (payload-converter.ts). */
export const PAYLOAD_CONVERTER_PATH = fileURLToPath(
  new URL(`../workflows/payload-converter${ext}`, import.meta.url),
);

/**
 * The workflow bundle `npm run build` wrote beside the compiled worker (dist/workflow-bundle.js): used
 * when the worker runs from dist/, so that a production start does not bundle the workflows again.
 */
export const PREBUILT_WORKFLOW_BUNDLE = fileURLToPath(new URL('../workflow-bundle.js', import.meta.url));
const usePrebuiltBundle = ext === '.js' && existsSync(PREBUILT_WORKFLOW_BUNDLE);

export interface HostWorkerOptions {
  settings: Settings;
  target: TemporalTarget;
  logger: Logger;
  /** GPU-side activities (measureVram, predictCandidates, runCanary, restoreService). */
  gpuActivities: Pick<HostActivities, 'measureVram' | 'predictCandidates' | 'runCanary' | 'restoreService'>;
  /** The host's legacy service (ids without a service), by name; null or absent: none. */
  legacyService?: string | null;
  /** The names of the host's services (their metrics' series exist from the start). */
  serviceNames?: readonly string[];
  /** Where to serve /metrics (docs/metrics.md); null or absent: no metrics server. */
  metricsAddress?: ListenAddress | null;
  /** KLR_METRICS_RECHECK (seconds): see MetricsCollector's recheckMs. */
  metricsRecheckSeconds?: number;
  /**
   * A workflow bundle built from these sources beforehand (the tests' scripted worker passes the test
   * run's build) instead of bundling at start; absent: the build's own beside a compiled worker, else
   * bundled at start.
   */
  workflowBundlePath?: string;
}

export interface RunningHostWorker {
  worker: Worker;
  taskQueue: string;
  /** Where /metrics is served (the real port), or null. */
  metricsAddress: ListenAddress | null;
  /** Resolves when the worker has stopped (after shutdown() or a fatal error). */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

export async function startHostWorker(options: HostWorkerOptions): Promise<RunningHostWorker> {
  const { settings, target, logger } = options;
  const bundlePath = options.workflowBundlePath ?? (usePrebuiltBundle ? PREBUILT_WORKFLOW_BUNDLE : null);
  const taskQueue = hostTaskQueue(settings.host);
  const connection = await NativeConnection.connect(target.connectionOptions);
  const clientConnection = await Connection.connect(target.connectionOptions);
  const client = new Client({ connection: clientConnection, namespace: target.namespace });
  const activities: HostActivities = {
    ...createCoordinationActivities({
      client,
      policy: settings.policy,
      auditDir: join(settings.dataDir, 'audit'),
      restoreService: options.gpuActivities.restoreService,
      legacyService: options.legacyService ?? null,
    }),
    ...options.gpuActivities,
  };
  // The collector exists before the worker: the workflows report to it from their first task.
  const collector = options.metricsAddress
    ? new MetricsCollector({
        reader: temporalStateReader(client, settings.host),
        checkContact: () => checkTemporalContact(client),
        stillRunning: (id) => workflowStillRunning(client, id),
        recheckMs: (options.metricsRecheckSeconds ?? 600) * 1000,
        policy: settings.policy,
        // The same name serviceIdentity gives legacy workflows, so their counts stay in one series.
        legacyServiceName: options.legacyService ?? null,
        serviceNames: options.serviceNames ?? [],
        ledgerPath: join(settings.dataDir, 'metrics', `counters-${settings.host}.json`),
        logger,
      })
    : null;
  let worker: Worker;
  let metricsServer: MetricsServer | null = null;
  try {
    // An unreadable data directory stops the start rather than run without the metrics asked for.
    await collector?.load();
    worker = await Worker.create({
      connection,
      namespace: target.namespace,
      taskQueue,
      ...(bundlePath ? { workflowBundle: { codePath: bundlePath } } : { workflowsPath: WORKFLOWS_PATH }),
      dataConverter: { payloadConverterPath: PAYLOAD_CONVERTER_PATH },
      activities,
      sinks: metricsSinks(collector),
      // The canary's restore must outlive a shutdown request: give running activities time to finish.
      shutdownGraceTime: '30 seconds',
    });
    if (collector && options.metricsAddress)
      metricsServer = await serveMetrics(createMetricsRegistry(collector), options.metricsAddress);
  } catch (err) {
    await clientConnection.close();
    await connection.close();
    throw err;
  }
  const done = worker.run().finally(async () => {
    await collector?.stop();
    await metricsServer?.close();
    await clientConnection.close();
    await connection.close();
    logger.info({ taskQueue }, 'host worker stopped');
  });
  // The one reading of this host's workflows: their queries are answered by this worker, now polling.
  collector?.start();
  void warnOfMissingAttributes(client, logger);
  logger.info(
    {
      taskQueue,
      namespace: target.namespace,
      address: target.address,
      host: settings.host,
      metrics: metricsServer ? `http://${formatListenAddress(metricsServer.address)}/metrics` : 'off',
      workflows: bundlePath ?? `bundled at start from ${WORKFLOWS_PATH}`,
    },
    'host worker started',
  );
  return {
    worker,
    taskQueue,
    metricsAddress: metricsServer?.address ?? null,
    done,
    async shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}

/** One warning at start when the namespace lacks search attributes this release sets (docs/upgrading.md). */
async function warnOfMissingAttributes(client: Client, logger: Logger): Promise<void> {
  try {
    const have = await registeredSearchAttributes(client);
    const missing = Object.entries(SEARCH_ATTRIBUTE_TYPES).filter(([name]) => !have.has(name));
    if (missing.length === 0) return;
    logger.warn(
      {
        namespace: client.options.namespace,
        missing: missing.map(([name]) => name),
        register: missing.map(
          ([name, type]) => `temporal operator search-attribute create --name ${name} --type ${type}`,
        ),
      },
      'search attributes missing on the namespace: the workflows run without them (KlrPhase is not set) until they are registered (deploy/temporal/register-search-attributes.sh)',
    );
  } catch (err) {
    logger.warn({ err }, 'cannot list the namespace search attributes');
  }
}
