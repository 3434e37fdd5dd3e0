// The worker of one GPU host: it runs the healing and coordinator workflows of that host and the
// activities that touch its GPU and its service, on the host's own task queue.
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

/** The workflow bundle's entry: the .ts source under tsx, the compiled .js under dist/. */
export const WORKFLOWS_PATH = fileURLToPath(
  new URL(`../workflows/index${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
);

export interface HostWorkerOptions {
  settings: Settings;
  target: TemporalTarget;
  logger: Logger;
  /** GPU-side activities (measureVram, predictCandidates, runCanary, restoreService). */
  gpuActivities: Pick<HostActivities, 'measureVram' | 'predictCandidates' | 'runCanary' | 'restoreService'>;
}

export interface RunningHostWorker {
  worker: Worker;
  taskQueue: string;
  /** Resolves when the worker has stopped (after shutdown() or a fatal error). */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

export async function startHostWorker(options: HostWorkerOptions): Promise<RunningHostWorker> {
  const { settings, target, logger } = options;
  const taskQueue = hostTaskQueue(settings.host);
  const connection = await NativeConnection.connect(target.connectionOptions);
  const clientConnection = await Connection.connect(target.connectionOptions);
  const client = new Client({ connection: clientConnection, namespace: target.namespace });
  const activities: HostActivities = {
    ...createCoordinationActivities({
      client,
      policy: settings.policy,
      auditDir: join(settings.dataDir, 'audit'),
    }),
    ...options.gpuActivities,
  };
  const worker = await Worker.create({
    connection,
    namespace: target.namespace,
    taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities,
    // The canary's restore must outlive a shutdown request: give running activities time to finish.
    shutdownGraceTime: '30 seconds',
  });
  logger.info(
    { taskQueue, namespace: target.namespace, address: target.address, host: settings.host },
    'host worker started',
  );
  const done = worker.run().finally(async () => {
    await clientConnection.close();
    await connection.close();
    logger.info({ taskQueue }, 'host worker stopped');
  });
  return {
    worker,
    taskQueue,
    done,
    async shutdown() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}
