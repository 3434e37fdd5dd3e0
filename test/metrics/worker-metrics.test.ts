// The production worker process serves every catalog metric on /metrics, derived from the workflows'
// durable state: a replacement worker reports the same counters and gauges, and a workflow that is
// terminated and started afresh never makes a counter go down. The SDK's own metrics are on a second port.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { type DevServerHandle, pickFreePort, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import { recordSymptom, signalSymptom } from '../../src/temporal/symptoms.js';
import { healingWorkflowId, hostCoordinatorWorkflowId, hostTaskQueue } from '../../src/domain/identifiers.js';
import { HostCoordinatorWorkflow } from '../../src/workflows/host-coordinator-workflow.js';
import { requestLeaseSignal } from '../../src/workflows/host-coordinator-messages.js';
import { METRICS, type MetricSpec } from '../../src/metrics/catalog.js';
import { eventually } from '../support/healing-harness.js';
import { NVIDIA_SMI_STAND_IN, type RealWorker, startRealWorker } from '../support/heal-stack.js';
import { type Exposition, scrape, seriesLines, valueOf } from '../support/metrics-text.js';

const host = `metrics-${process.pid}`;
const kind = 'vllm_oom';
const HOUR = 3600_000;
const POLL_MS = 90_000;

let server: DevServerHandle | undefined;
let connection: Connection | undefined;
let client: Client;
let dir: string;
let worker: RealWorker | undefined;
let env: Record<string, string>;
let metricsUrl: string;
let sdkUrl: string;

const utcHhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);

before(async () => {
  server = await startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  dir = await mkdtemp(join(tmpdir(), 'klr-metrics-'));
  const [port, sdkPort] = [await pickFreePort(), await pickFreePort()];
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  sdkUrl = `http://127.0.0.1:${sdkPort}/metrics`;
  // A window 10-11 hours from now: closed for the whole test.
  const opens = Date.now() + 10 * HOUR;
  env = {
    TEMPORAL_ADDRESS: server.address,
    KLR_HOST: host,
    KLR_DATA_DIR: join(dir, 'data'),
    KLR_GPU_MAINTENANCE_TZ: 'UTC',
    KLR_GPU_MAINTENANCE_WINDOW: `${utcHhmm(opens)}-${utcHhmm(opens + HOUR)}`,
    KLR_GPU_MAINTENANCE_MAX_DOWNTIME: '45',
    KLR_ESCALATION_FLAG_TTL: '0',
    KLR_NVIDIA_SMI: NVIDIA_SMI_STAND_IN,
    KLR_SIM_GPU_STATE: join(dir, 'gpu-state.json'),
    KLR_METRICS_ADDR: `127.0.0.1:${port}`,
    KLR_SDK_METRICS_ADDR: `127.0.0.1:${sdkPort}`,
    // An armed flag unreported for 2 s is rechecked on a scrape (the terminate test below).
    KLR_METRICS_RECHECK: '2s',
  };
  worker = await startRealWorker(env);
});

after(async () => {
  await worker?.stop();
  await connection?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Scrape until `ready` holds for the exposition (the workflows report after their task completes). */
async function scrapeUntil(what: string, ready: (e: Exposition) => boolean): Promise<Exposition> {
  return eventually(
    what,
    async () => {
      const e = await scrape(metricsUrl);
      return ready(e) ? e : undefined;
    },
    POLL_MS,
  );
}

/**
 * The sum of the samples that have these labels, whatever their others (the `service` label: the worker's
 * legacy service's name, or "" where the worker has none); undefined when none has them.
 */
function sumOf(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const matching = e.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return matching.length === 0 ? undefined : matching.reduce((n, s) => n + s.value, 0);
}
const symptoms = (e: Exposition) => sumOf(e, METRICS.symptoms.name, { kind });
const rejected = (e: Exposition, reason: string) => sumOf(e, METRICS.symptomsRejected.name, { kind, reason });
const flagOf = (e: Exposition) => sumOf(e, METRICS.escalationFlag.name, { kind });

let before1: Exposition;

test('every catalog metric is exposed with its type, valued from the workflows', async () => {
  for (let i = 1; i <= 3; i++)
    await recordSymptom(client, host, { kind, id: `m-${i}`, details: { deficitMb: 512 } });
  await signalSymptom(client, host, { kind, id: 'm-1', details: { deficitMb: 512 } }); // duplicate
  await signalSymptom(client, host, { kind, eventTime: new Date(Date.now() - 25 * HOUR).toISOString() }); // stale
  await signalSymptom(client, host, { kind, eventTime: 'last tuesday' }); // invalid
  // A lease request outside the window: the coordinator refuses it ("not now").
  await client.workflow.signalWithStart(HostCoordinatorWorkflow, {
    workflowId: hostCoordinatorWorkflowId(host),
    taskQueue: hostTaskQueue(host),
    args: [{ host }],
    signal: requestLeaseSignal,
    signalArgs: [{ requestId: 'r-1', holderWorkflowId: 'nobody', kind, predictedDowntimeMs: 5_000 }],
  });

  const e = await scrapeUntil(
    'symptoms, rejections, the armed flag and the refused lease',
    (x) =>
      symptoms(x) === 3 &&
      rejected(x, 'duplicate') === 1 &&
      rejected(x, 'stale') === 1 &&
      rejected(x, 'invalid') === 1 &&
      flagOf(x) === 1 &&
      valueOf(x, METRICS.leaseWaits.name, { reason: 'outside_window' }) === 1,
  );
  for (const spec of Object.values(METRICS)) {
    assert.equal(e.types.get(spec.name), spec.type, `# TYPE ${spec.name} ${spec.type}`);
    const samples = e.samples.filter((s) => s.name === spec.name || s.name.startsWith(`${spec.name}_`));
    if (!(spec as MetricSpec).absentUntilMeasured) assert.ok(samples.length > 0, `${spec.name} has samples`);
    for (const s of samples) {
      const names = Object.keys(s.labels).filter((l) => l !== 'le');
      assert.deepEqual(names.sort(), [...spec.labels].sort(), `labels of ${s.name}`);
    }
  }
  // One legacy workflow: all its series under one service label, the flag one series.
  const services = new Set(
    e.samples.filter((s) => s.name === METRICS.symptoms.name).map((s) => s.labels.service),
  );
  assert.equal(services.size, 1, `one service label for the legacy workflow: ${[...services].join(', ')}`);
  assert.equal(e.samples.filter((s) => s.name === METRICS.escalationFlag.name).length, 1);
  // The coordinator's refusal is per host (service="").
  assert.equal(valueOf(e, METRICS.decisionsRefused.name, { service: '', reason: 'outside_window' }), 1);
  assert.equal(valueOf(e, METRICS.budgetRemaining.name), 45);
  assert.equal(valueOf(e, METRICS.windowOpen.name), 0);
  assert.equal(valueOf(e, METRICS.cooldown.name), 0);
  assert.equal(valueOf(e, METRICS.restoreFailureLatched.name), 0);
  assert.equal(sumOf(e, `${METRICS.canaryDowntime.name}_count`), 0);
  assert.equal(e.types.get('process_cpu_user_seconds_total'), 'counter', 'default process metrics');

  const sdk = await scrape(sdkUrl);
  const temporal = [...sdk.types.keys()].filter((n) => n.startsWith('temporal_'));
  assert.ok(temporal.length > 0, `the SDK's metrics on ${sdkUrl}`);
  assert.ok(sdk.types.has('temporal_workflow_task_queue_poll_succeed_total'), temporal.join(', '));
  // Durations in seconds, with the unit in the name (Prometheus conventions), never in milliseconds.
  assert.ok(sdk.types.has('temporal_workflow_task_schedule_to_start_latency_seconds'), temporal.join(', '));
  assert.deepEqual(
    temporal.filter((n) => /_ms$|latency$/.test(n)),
    [],
    'no duration without its unit, none in milliseconds',
  );
  before1 = e;
});

test('a replacement worker reports the same counters and gauges', async () => {
  assert.ok(worker && before1);
  // Everything but the time of the last contact with Temporal, which moves on.
  const figures = (x: Exposition) =>
    seriesLines(x, 'kloros_').filter((l) => !l.startsWith(METRICS.lastStateRead.name));
  const expected = figures(before1);
  await worker.stop();
  const stoppedAt = Date.now();
  worker = await startRealWorker(env);
  const startedAt = Date.now();
  const e = await scrapeUntil('the same kloros_ series as before the restart', (x) => {
    const got = figures(x);
    return got.length === expected.length && got.every((line, i) => line === expected[i]);
  });
  assert.deepEqual(figures(e), expected);
  assert.ok(
    (valueOf(e, METRICS.lastStateRead.name) ?? 0) * 1000 >= stoppedAt,
    'the new worker has heard from Temporal since it started',
  );
  console.log(
    `restart: new worker up ${startedAt - stoppedAt} ms after the old one stopped; same metrics ${Date.now() - startedAt} ms after it started`,
  );
});

test('a workflow terminated and started afresh never makes a counter go down', async () => {
  await client.workflow.getHandle(healingWorkflowId(host, kind)).terminate('metrics test: start afresh');
  // A terminated workflow cannot report: its armed flag is rechecked (KLR_METRICS_RECHECK, 2 s here) on a
  // scrape. Once the flag reads 0 the collector has seen the workflow gone; its counts must still be there.
  const gone = await scrapeUntil('the flag of the terminated workflow at 0', (x) => flagOf(x) === 0);
  assert.equal(symptoms(gone), 3);
  assert.equal(rejected(gone, 'duplicate'), 1);

  await recordSymptom(client, host, { kind, id: 'm-fresh-1', details: { deficitMb: 512 } });
  const fresh = await scrapeUntil('the new chain counted on top', (x) => symptoms(x) === 4);
  assert.equal(rejected(fresh, 'stale'), 1);
  assert.equal(flagOf(fresh), 0);
});
