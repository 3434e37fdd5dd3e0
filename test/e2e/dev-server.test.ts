// End to end on the real dev server (SQLite file) with a real worker process: symptoms from the SDK and
// from the plain Temporal CLI, escalation, a canary in the open window, search attributes, and a
// server restart that loses nothing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { Client, Connection } from '@temporalio/client';
import { type DevServerHandle, startDevServer } from '../../src/servers/dev-server.js';
import { resolveTemporalCli } from '../../src/servers/temporal-cli.js';
import { healingWorkflowId } from '../../src/domain/identifiers.js';
import {
  HOST_ATTRIBUTE,
  PHASE_ATTRIBUTE,
  SEARCH_ATTRIBUTE_TYPES,
} from '../../src/workflows/search-attributes.js';
import { type HealingStateView, stateQuery } from '../../src/workflows/healing-messages.js';
import { signalSymptom } from '../../src/temporal/symptoms.js';
import { decisionsOf, eventually, healingState, symptom } from '../support/healing-harness.js';

const host = `e2e-${process.pid}`;
let dir: string;
let server: DevServerHandle;
let worker: ResultPromise | undefined;
let connection: Connection;
let client: Client;
let cli: string;

function utcHhmm(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

/** Starts the worker; returns it wrapped (a subprocess is itself a promise of its result) with its output. */
async function startWorker(
  address: string,
  as = { host, dataDir: '' },
): Promise<{ proc: ResultPromise; output: () => string }> {
  const now = Date.now();
  const proc = execa(process.execPath, ['--import', 'tsx', 'test/support/scripted-worker.ts'], {
    env: {
      TEMPORAL_ADDRESS: address,
      KLR_HOST: as.host,
      KLR_DATA_DIR: as.dataDir || dir,
      KLR_GPU_MAINTENANCE_TZ: 'UTC',
      KLR_GPU_MAINTENANCE_WINDOW: `${utcHhmm(now - 3600_000)}-${utcHhmm(now + 3600_000)}`,
      KLR_ESCALATION_FLAG_TTL: '0',
      KLR_CANARY_SOAK_SECONDS: '0',
      KLR_PREDICT_INTERVAL: '0',
      KLR_HISTORY_EVENTS_LIMIT: '400',
    },
    stdout: 'pipe',
    stderr: 'inherit',
    reject: false,
  });
  let text = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('worker ready')) resolve();
    });
    void proc.then((r) =>
      reject(new Error(`worker exited early (${String(r.exitCode ?? r.signal)}): ${String(r.stdout)}`)),
    );
  });
  return { proc, output: () => text };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-e2e-'));
  cli = await resolveTemporalCli();
  server = await startDevServer({
    dbFile: join(dir, 'temporal.sqlite'),
    ui: false,
    searchAttributes: SEARCH_ATTRIBUTE_TYPES,
  });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  worker = (await startWorker(server.address)).proc;
});

after(async () => {
  worker?.kill('SIGTERM');
  await worker;
  await connection?.close();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('a symptom from the SDK and one from the plain Temporal CLI both show up in state', async () => {
  const first = await symptom(client, host);
  assert.equal(first.count24h, 1);
  const workflowId = healingWorkflowId(host, 'vllm_oom');
  await execa(cli, [
    'workflow',
    'signal',
    '--address',
    server.address,
    '--workflow-id',
    workflowId,
    '--name',
    'symptom',
    '--input',
    JSON.stringify({ kind: 'vllm_oom', id: 'cli-1', source: 'temporal-cli', details: { deficitMb: 640 } }),
  ]);
  const state = await eventually('CLI symptom counted', async () => {
    const s = await healingState(client, host);
    return s.count24h === 2 ? s : undefined;
  });
  assert.equal(state.totals.counted, 2);
  // The state query answers the plain CLI too.
  const { stdout } = await execa(cli, [
    'workflow',
    'query',
    '--address',
    server.address,
    '--workflow-id',
    workflowId,
    '--name',
    'state',
    '--output',
    'json',
  ]);
  assert.match(stdout, /"count24h":\s*2/);
});

test('signal-with-start from the plain Temporal CLI starts a workflow of a new kind, as the README shows', async () => {
  const kind = 'kv_cache_small';
  const workflowId = healingWorkflowId(host, kind);
  await execa(cli, [
    'workflow',
    'signal-with-start',
    '--address',
    server.address,
    '--workflow-id',
    workflowId,
    '--type',
    'HealingWorkflow',
    '--task-queue',
    `kloros-healing.${host}`,
    '--input',
    JSON.stringify({ host, kind }),
    '--signal-name',
    'symptom',
    '--signal-input',
    JSON.stringify({ kind, details: { estimatedMaxModelLen: 20480 } }),
  ]);
  const state = await eventually('started and counted', async () => {
    const s = await healingState(client, host, kind);
    return s.count24h === 1 ? s : undefined;
  });
  assert.equal(state.mode, 'predictive');
});

test('the third symptom escalates, and the canary in the open window promotes a candidate', async () => {
  const third = await symptom(client, host);
  assert.equal(third.armed, true);
  const done = await eventually(
    'promoted',
    async () => {
      const s = await healingState(client, host);
      return s.lastCanary?.outcome === 'promoted' ? s : undefined;
    },
    30_000,
  );
  assert.equal(done.armed, false);
  assert.ok(
    decisionsOf(done, 'lease_granted').some((d) => d.params.kind === 'vllm_oom') ||
      decisionsOf(done, 'canary_started').length > 0,
  );

  // The Web UI's event history says what each step is: the activities and the timers carry summaries.
  const history = await client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom')).fetchHistory();
  const summaries = (history.events ?? [])
    .map((e) => e.userMetadata?.summary?.data)
    .filter((d): d is Uint8Array => d instanceof Uint8Array && d.length > 0)
    .map((d) => JSON.parse(Buffer.from(d).toString('utf8')) as string);
  assert.ok(summaries.includes(`canary ${done.lastCanary!.candidateId} on ${host}`), summaries.join(' | '));
  assert.ok(
    summaries.some((t) => t.startsWith(`ask ${host}'s coordinator for the canary lease`)),
    summaries.join(' | '),
  );
  assert.ok(
    summaries.some((t) => t.startsWith(`predict the vllm_oom configs that fit on ${host}`)),
    summaries.join(' | '),
  );
});

test('search attributes let the Web UI and healctl filter the workflows', async () => {
  const found = await eventually('visible in visibility', async () => {
    const ids: string[] = [];
    for await (const wf of client.workflow.list({ query: `KlrHost = "${host}" AND KlrKind = "vllm_oom"` }))
      ids.push(wf.workflowId);
    return ids.length > 0 ? ids : undefined;
  });
  assert.deepEqual(found, [healingWorkflowId(host, 'vllm_oom')]);
  // KlrPhase follows the workflow's phase (0.4, where the namespace has it).
  const handle = client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
  await eventually('KlrPhase equals the phase of the state query', async () => {
    const [described, state] = await Promise.all([handle.describe(), handle.query(stateQuery)]);
    return described.typedSearchAttributes.get(PHASE_ATTRIBUTE) === state.phase ? true : undefined;
  });
});

test('on a namespace without KlrPhase the workflows run and leave it out, and the worker says how to register it', async () => {
  const otherDir = await mkdtemp(join(tmpdir(), 'klr-e2e-old-ns-'));
  const { KlrPhase: _left, ...older } = SEARCH_ATTRIBUTE_TYPES;
  const old = await startDevServer({ ui: false, searchAttributes: older });
  const oldConnection = await Connection.connect({ address: old.address });
  const oldClient = new Client({ connection: oldConnection });
  const oldHost = `${host}-old-ns`;
  const w = await startWorker(old.address, { host: oldHost, dataDir: otherDir });
  try {
    await symptom(oldClient, oldHost, 'vllm_oom', { id: 'old-ns-1' });
    const state = await eventually('the workflow runs past its start', async () => {
      const s = await healingState(oldClient, oldHost);
      return s.phase !== 'starting' ? s : undefined;
    });
    assert.equal(state.totals.counted, 1);
    const described = await oldClient.workflow.getHandle(healingWorkflowId(oldHost, 'vllm_oom')).describe();
    assert.equal(described.status.name, 'RUNNING');
    assert.equal(described.typedSearchAttributes.get(PHASE_ATTRIBUTE), undefined);
    assert.equal(described.typedSearchAttributes.get(HOST_ATTRIBUTE), oldHost);
    const warning = await eventually('the worker warns of the missing attribute', async () =>
      w
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { missing?: string[]; register?: string[] })
        .find((l) => l.missing !== undefined),
    );
    assert.deepEqual(warning.missing, ['KlrPhase']);
    assert.deepEqual(warning.register, [
      'temporal operator search-attribute create --name KlrPhase --type Keyword',
    ]);
  } finally {
    w.proc.kill('SIGTERM');
    await w.proc;
    await oldConnection.close();
    await old.stop();
    await rm(otherDir, { recursive: true, force: true });
  }
});

test('a restart of the dev server on the same SQLite file loses nothing', async () => {
  const before: HealingStateView = await healingState(client, host);
  worker?.kill('SIGTERM');
  await worker;
  await connection.close();
  const dbFile = join(dir, 'temporal.sqlite');
  await server.stop();
  server = await startDevServer({ dbFile, ui: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  worker = (await startWorker(server.address)).proc;
  const after = await eventually('state after restart', () => healingState(client, host));
  assert.equal(after.totals.counted, before.totals.counted);
  assert.equal(after.lastCanary?.outcome, 'promoted');
  const again = await symptom(client, host);
  assert.equal(again.count24h, 1, 'counting goes on after the restart (promotion had reset the count)');
});

test('thousands of symptoms continue as new with the count and the idempotency ids intact', async () => {
  const kind = 'storm_test';
  const total = 2000;
  await symptom(client, host, kind, { id: 'storm:0' });
  for (let batch = 1; batch < total; batch += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, total - batch) }, (_, i) =>
        signalSymptom(client, host, { kind, id: `storm:${batch + i}` }),
      ),
    );
  }
  // Redeliveries of ids counted in earlier runs still count once.
  for (let i = 0; i < 10; i++) await signalSymptom(client, host, { kind, id: `storm:${i}` });
  const state = await eventually(
    'all counted',
    async () => {
      const s = await healingState(client, host, kind);
      return s.totals.counted === total && s.totals.duplicates === 10 ? s : undefined;
    },
    120_000,
  );
  assert.equal(state.count24h, total);
  // How many runs depends on how the server batches the signals into workflow tasks (a slow worker gets
  // hundreds per task): at least one continue-as-new, and the current run's history stays small.
  assert.ok(state.runs >= 2, `expected at least one continue-as-new, got ${state.runs} run(s)`);
  assert.ok(decisionsOf(state, 'continued_as_new').length > 0);
  const handle = client.workflow.getHandle(healingWorkflowId(host, kind));
  const events = (await handle.fetchHistory()).events?.length ?? 0;
  assert.ok(events > 0 && events < 1000, `the current run's history stays bounded (${events} events)`);
});
