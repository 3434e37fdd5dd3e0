// healctl on a GPU host that runs several vLLM services (issue 17): real healctl processes (test/support/programs.ts)
// against a real dev server (with the search attributes) and a real host-worker process. The host has
// vllm_oom workflows for services a and b (no legacy one), kv_cache for the legacy service and for a, and
// oom_probe for b only. The maintenance window is hours away, so nothing moves while the commands run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { Client, Connection } from '@temporalio/client';
import { healingWorkflowId } from '../../src/domain/identifiers.js';
import { type DevServerHandle, startDevServer } from '../../src/servers/dev-server.js';
import { recordSymptom } from '../../src/temporal/symptoms.js';
import { stateQuery } from '../../src/workflows/healing-messages.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import { eventually } from '../support/healing-harness.js';
import { HEALCTL_SCRIPT } from '../support/programs.js';

const host = `svc-${process.pid}`;
let dir: string;
let server: DevServerHandle;
let worker: ResultPromise | undefined;
let connection: Connection;
let client: Client;

const utcHhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);

function healctl(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [HEALCTL_SCRIPT, ...args], {
    env: { TEMPORAL_ADDRESS: server.address, KLR_HOST: host, USER: 'tester', ...env },
    reject: false,
  });
}

const record = (kind: string, service: string | null) =>
  recordSymptom(client, host, { kind, details: { deficitMb: 512, family: 'torch_oom' } }, service);

interface Row {
  host: string;
  service: string | null;
  legacyId: boolean;
  kind: string;
  count24h: number | null;
  workflowId: string;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-healctl-svc-'));
  server = await startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  const now = Date.now();
  worker = execa(process.execPath, ['--import', 'tsx', 'test/support/scripted-worker.ts'], {
    env: {
      TEMPORAL_ADDRESS: server.address,
      KLR_HOST: host,
      KLR_DATA_DIR: dir,
      KLR_GPU_MAINTENANCE_TZ: 'UTC',
      KLR_GPU_MAINTENANCE_WINDOW: `${utcHhmm(now + 6 * 3600_000)}-${utcHhmm(now + 7 * 3600_000)}`,
      KLR_PREDICT_INTERVAL: '0',
    },
    stdout: 'pipe',
    stderr: 'inherit',
    reject: false,
  });
  const proc = worker;
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('worker ready')) resolve();
    });
    void proc.then((r) => reject(new Error(`worker exited early (${String(r.exitCode ?? r.signal)})`)));
  });
  await record('vllm_oom', 'a');
  await record('vllm_oom', 'a');
  await record('vllm_oom', 'b');
  await record('kv_cache', null);
  await record('kv_cache', 'a');
  await record('oom_probe', 'b');
  // Everything in visibility before the commands that read it run.
  await eventually(
    'five workflows in visibility',
    async () => {
      const r = await healctl(['list', '--json']);
      assert.equal(r.exitCode, 0, r.stderr);
      return (JSON.parse(r.stdout) as Row[]).length === 5 ? true : undefined;
    },
    60_000,
  );
});

after(async () => {
  worker?.kill('SIGTERM');
  await worker;
  await connection?.close();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('list has a SERVICE column and a service field, rows by host, service, kind; --service filters', async () => {
  const json = await healctl(['list', '--json']);
  assert.equal(json.exitCode, 0, json.stderr);
  const rows = JSON.parse(json.stdout) as Row[];
  const named = rows.filter((r) => !r.legacyId).map((r) => `${r.service}/${r.kind}/${r.count24h}`);
  assert.deepEqual(named, ['a/kv_cache/1', 'a/vllm_oom/2', 'b/oom_probe/1', 'b/vllm_oom/1']);
  const legacy = rows.filter((r) => r.legacyId);
  assert.deepEqual(
    legacy.map((r) => r.workflowId),
    [healingWorkflowId(host, 'kv_cache')],
  );

  const table = await healctl(['list']);
  assert.equal(table.exitCode, 0, table.stderr);
  assert.match(table.stdout, /^HOST +SERVICE +KIND +MODE +ARMED +COUNT +PHASE +STATUS$/m);
  assert.match(table.stdout, new RegExp(`^${host} +a +vllm_oom +\\w+ +no +2/3 +.+ +running$`, 'm'));
  assert.match(table.stdout, new RegExp(`^${host} +b +vllm_oom +\\w+ +no +1/3 +.+ +running$`, 'm'));
  const lines = table.stdout.split('\n').filter((l) => l.startsWith(host));
  assert.ok(
    lines.findIndex((l) => / a +vllm_oom /.test(l)) < lines.findIndex((l) => / b +oom_probe /.test(l)),
    'grouped by service, then kind',
  );

  const onlyB = await healctl(['list', '--service', 'b', '-o', 'yaml']);
  assert.equal(onlyB.exitCode, 0, onlyB.stderr);
  assert.match(onlyB.stdout, /service: b/);
  assert.doesNotMatch(onlyB.stdout, /service: a/);
  const none = await healctl(['list', '--service', 'zzz']);
  assert.equal(none.exitCode, 0);
  assert.match(none.stderr, /no workflows of service zzz on .*; services with some: .*a, b/);
});

test('status --service names one workflow; without it, two services are an error listing them', async () => {
  const a = await healctl(['status', 'vllm_oom', '--service', 'a']);
  assert.equal(a.exitCode, 0, a.stderr);
  assert.match(
    a.stdout,
    new RegExp(`^vllm_oom on ${host}, service a {2}\\(kloros-healing/${host}/a/vllm_oom\\)`),
  );
  assert.match(a.stdout, /symptoms 24 h {3}2 of threshold 3/);
  const b = await healctl(['status', 'vllm_oom', '--service', 'b', '--json']);
  const view = (JSON.parse(b.stdout) as { healing: { workflowId: string; count24h: number }[] }).healing[0];
  assert.equal(view?.workflowId, healingWorkflowId(host, 'vllm_oom', 'b'));
  assert.equal(view?.count24h, 1);

  const ambiguous = await healctl(['status', 'vllm_oom']);
  assert.equal(ambiguous.exitCode, 1);
  assert.match(
    ambiguous.stderr,
    /^healctl status: .* vllm_oom healing for several services \(a, b\): say which with --service one of: a, b$/,
  );
  const unknown = await healctl(['history', 'vllm_oom', '--service', 'zzz']);
  assert.equal(unknown.exitCode, 1);
  assert.match(
    unknown.stderr,
    /^healctl history: no healing workflow of service "zzz" for vllm_oom on .* has one for: a, b \(--service one of: a, b\)$/,
  );
  // One service only: it is found without --service.
  const single = await healctl(['status', 'oom_probe']);
  assert.equal(single.exitCode, 0, single.stderr);
  assert.match(single.stdout, new RegExp(`\\(kloros-healing/${host}/b/oom_probe\\)`));
});

test('a legacy workflow and a named service for one kind: the legacy id without --service', async () => {
  const legacy = await healctl(['status', 'kv_cache']);
  assert.equal(legacy.exitCode, 0, legacy.stderr);
  assert.match(legacy.stdout, new RegExp(`^kv_cache on ${host} {2}\\(kloros-healing/${host}/kv_cache\\)`));
  const named = await healctl(['history', 'kv_cache', '--service', 'a', '--json']);
  assert.equal(named.exitCode, 0, named.stderr);
  assert.equal(
    (JSON.parse(named.stdout) as { workflowId: string }).workflowId,
    healingWorkflowId(host, 'kv_cache', 'a'),
  );
  // The legacy service's name, where the worker gives one, reaches the legacy id.
  const legacyName = (await client.workflow.getHandle(healingWorkflowId(host, 'kv_cache')).query(stateQuery))
    .service;
  const byName = await healctl(['status', 'kv_cache', '--service', legacyName ?? 'vllm']);
  if (legacyName === null) {
    assert.equal(byName.exitCode, 1);
    assert.match(byName.stderr, /has one for: .*a.*\(--service one of: /);
  } else {
    assert.equal(byName.exitCode, 0, byName.stderr);
    assert.match(byName.stdout, new RegExp(`\\(kloros-healing/${host}/kv_cache\\)`));
  }
});

test('status without a kind groups the workflows by service; --service keeps one service', async () => {
  const all = await healctl(['status']);
  assert.equal(all.exitCode, 0, all.stderr);
  const a = all.stdout.indexOf(`== service a on ${host} ==`);
  const b = all.stdout.indexOf(`== service b on ${host} ==`);
  assert.ok(a >= 0 && b > a, all.stdout);
  assert.match(all.stdout, /== service .*, legacy ids kloros-healing\/.*\/<kind> on /);
  assert.ok(all.stdout.indexOf(`(kloros-healing/${host}/b/oom_probe)`) > b);
  const onlyA = await healctl(['status', '--service', 'a', '--json']);
  assert.equal(onlyA.exitCode, 0, onlyA.stderr);
  const ids = (JSON.parse(onlyA.stdout) as { healing: { workflowId: string }[] }).healing.map(
    (v) => v.workflowId,
  );
  assert.deepEqual(ids, [healingWorkflowId(host, 'kv_cache', 'a'), healingWorkflowId(host, 'vllm_oom', 'a')]);
});

test('symptom, escalate, clear, wait, start and cancel act on the service --service names', async () => {
  const counted = await healctl(['symptom', 'vllm_oom', '--service', 'b']);
  assert.equal(counted.exitCode, 0, counted.stderr);
  assert.match(counted.stdout, new RegExp(`^vllm_oom on ${host}, service b: symptom counted`));
  assert.match(counted.stdout, /symptoms 24 h {2}2 of threshold 3/);

  const esc = await healctl(['escalate', 'vllm_oom', '--service', 'b', '--reason', 'b only']);
  assert.equal(esc.exitCode, 0, esc.stderr);
  const stateOf = (service: string) =>
    client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom', service)).query(stateQuery);
  assert.equal((await stateOf('b')).armed, true);
  assert.equal((await stateOf('a')).armed, false, 'the other service is untouched');
  const waited = await healctl(['wait', 'vllm_oom', '--service', 'b', '--for', 'armed', '--timeout', '30s']);
  assert.equal(waited.exitCode, 0, waited.stderr);
  assert.equal(waited.stdout, `vllm_oom on ${host}, service b: armed`);
  const clear = await healctl(['clear', 'vllm_oom', '--service', 'b', '--reason', 'done']);
  assert.equal(clear.exitCode, 0, clear.stderr);
  assert.equal((await stateOf('b')).armed, false);
  const noService = await healctl(['escalate', 'vllm_oom', '--reason', 'which one?']);
  assert.equal(noService.exitCode, 1);
  assert.match(noService.stderr, /--service one of: a, b/);

  const started = await healctl(['start', 'new_kind', '--service', 'b']);
  assert.equal(started.exitCode, 0, started.stderr);
  assert.match(started.stdout, new RegExp(`^started: kloros-healing/${host}/b/new_kind `));
  const cancel = await healctl(['cancel', 'new_kind', '--service', 'b', '--yes']);
  assert.equal(cancel.exitCode, 0, cancel.stderr);
  assert.equal(cancel.stdout, `cancel requested: kloros-healing/${host}/b/new_kind`);
});

test('with a services file in the environment, it decides which workflow --service names', async () => {
  const file = join(dir, 'services.yaml');
  const entry = (name: string, port: number, legacy = false) =>
    `  - {name: ${name}, config: /etc/vllm/${name}.yaml, restart: [systemctl, restart, vllm@${name}], url: "http://127.0.0.1:${port}", gpus: [${port - 8000}]${legacy ? ', legacyIds: true' : ''}}\n`;
  await writeFile(file, `services:\n${entry('vllm', 8000, true)}${entry('a', 8001)}${entry('b', 8002)}`);
  const env = { KLR_SERVICES_FILE: file, KLR_DATA_DIR: dir };
  const legacy = await healctl(['status', 'kv_cache', '--service', 'vllm'], env);
  assert.equal(legacy.exitCode, 0, legacy.stderr);
  assert.match(legacy.stdout, new RegExp(`\\(kloros-healing/${host}/kv_cache\\)`));
  const unknown = await healctl(['status', 'vllm_oom', '--service', 'c'], env);
  assert.equal(unknown.exitCode, 1);
  assert.match(unknown.stderr, /unknown service "c": this host runs "vllm", "a", "b" \(services file /);
  // Another host than the file's: the file says nothing about it.
  const elsewhere = await healctl(['status', 'vllm_oom', '--service', 'a', '--host', 'other-host'], env);
  assert.equal(elsewhere.exitCode, 1);
  assert.match(elsewhere.stderr, /no healing workflow kloros-healing\/other-host\/a\/vllm_oom/);
});

test('a bad --service is a usage error (exit 2) that says what is expected, on one short line', async () => {
  const long = 'x'.repeat(10_000);
  const [dots, huge, upper, list] = await Promise.all([
    healctl(['status', 'vllm_oom', '--service', '../x']),
    healctl(['symptom', 'vllm_oom', '--service', long]),
    healctl(['escalate', 'vllm_oom', '--service', 'Llama', '--reason', 'r']),
    healctl(['list', '--service', 'a b']),
  ]);
  for (const r of [dots, huge, upper, list]) {
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /bad --service .*: expected a service name of 1-63 characters/);
    assert.ok(r.stderr.length < 400, `short: ${r.stderr.length} characters`);
  }
  assert.match(dots.stderr, /^healctl status: bad --service "\.\.\/x"/);
  assert.match(huge.stderr, /"x{80}"… \(10000 characters\)/);
});

test("observe --service sends the log's incidents to that service's workflow", async () => {
  const before = await client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom', 'a')).query(stateQuery);
  const line = (await readFile('test/fixtures/logs/sim-kv.txt', 'utf8'))
    .split('\n')[18]!
    .replace(/ERROR \d\d-\d\d \d\d:\d\d:\d\d /, 'ERROR '); // no time: it happened now
  const r = await execa(
    process.execPath,
    [HEALCTL_SCRIPT, 'observe', '-', '--once', '--service', 'a', '--state-dir', join(dir, 'observe')],
    {
      env: { TEMPORAL_ADDRESS: server.address, KLR_HOST: host },
      input: `${line}\n`,
      reject: false,
    },
  );
  assert.equal(r.exitCode, 0, r.stderr);
  await eventually('the symptom counted for service a', async () => {
    const after = await client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom', 'a')).query(stateQuery);
    return after.count24h === before.count24h + 1 ? true : undefined;
  });
  const bad = await healctl(['observe', '-', '--dry-run', '--service', 'A_B']);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /^healctl observe: bad --service "A_B": expected a service name/);
});
