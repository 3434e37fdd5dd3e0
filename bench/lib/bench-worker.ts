// A worker process for benchmarks: one Worker per GPU host (task queue kloros-healing.<host>), all in
// this one process, sharing one NativeConnection and one workflow bundle — the production worker's
// workflows and coordination activities, with constant-time stand-ins for the GPU activities (a bench
// measures the Temporal path, not nvidia-smi). Hosts come from KLR_BENCH_HOSTS (comma-separated); every
// other KLR_ setting is read as the production worker reads it. Prints "bench worker started" once all
// poll; SIGTERM/SIGINT stops them.
import { metricsSinks } from '../../src/metrics/metrics-sinks.js';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { createCoordinationActivities } from '../../src/activities/coordination.js';
import { loadSettings } from '../../src/config/settings.js';
import { loadTemporalTarget } from '../../src/config/temporal-connection.js';
import { hostTaskQueue } from '../../src/domain/identifiers.js';
import { PAYLOAD_CONVERTER_PATH, WORKFLOWS_PATH } from '../../src/workers/host-worker.js';
import { scriptedGpu } from '../../test/support/scripted-gpu.js';

const hosts = (process.env.KLR_BENCH_HOSTS ?? '').split(',').filter(Boolean);
if (hosts.length === 0) {
  console.error('KLR_BENCH_HOSTS: expected a comma-separated list of host names');
  process.exit(2);
}
const settings = loadSettings();
const target = loadTemporalTarget();
Runtime.install({ logger: new DefaultLogger('WARN') });

const workflowBundle = await bundleWorkflowCode({
  workflowsPath: WORKFLOWS_PATH,
  payloadConverterPath: PAYLOAD_CONVERTER_PATH,
  logger: { log() {}, trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error },
});
const connection = await NativeConnection.connect(target.connectionOptions);
const clientConnection = await Connection.connect(target.connectionOptions);
const client = new Client({ connection: clientConnection, namespace: target.namespace });
const gpu = scriptedGpu({ predictedDowntimeMs: 20_000 }).activities;

const workers = await Promise.all(
  hosts.map((host) =>
    Worker.create({
      connection,
      namespace: target.namespace,
      taskQueue: hostTaskQueue(host),
      workflowBundle,
      dataConverter: { payloadConverterPath: PAYLOAD_CONVERTER_PATH },
      sinks: metricsSinks(null),
      activities: {
        ...createCoordinationActivities({
          client,
          policy: settings.policy,
          auditDir: join(settings.dataDir, 'audit', host),
          restoreService: gpu.restoreService,
        }),
        ...gpu,
      },
    }),
  ),
);
const running = Promise.all(workers.map((w) => w.run()));
const stop = () => {
  for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
console.log(`bench worker started: ${hosts.length} host(s), pid ${process.pid}`);
try {
  await running;
} finally {
  await clientConnection.close();
  await connection.close();
}
