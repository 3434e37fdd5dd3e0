// Several vLLM services on one GPU host (issue 17), on the observer's side, with real processes and files:
// the daemon (src/observer/main.ts) follows every service's log of KLR_SERVICES_FILE against a real dev
// server and worker, each incident counted by its own service's HealingWorkflow, each service with its own
// position file; a record spooled by the single-service release (no service field) is still delivered, to
// the legacy ids; the HTTP door's ?service= and the Alertmanager receiver's service label route symptoms,
// and every label that cannot be routed ("../", 10 kB, look-alike letters, none on a host of several) is
// refused with the reason — alone, for an alert, while the rest of its webhook goes through.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DevServerHandle } from '../../src/servers/dev-server.js';
import { pickFreePort } from '../../src/servers/dev-server.js';
import { torchOutOfMemory } from '../../sim/lib/vllm-messages.js';
import { OBSERVER_METRICS as M } from '../../src/observer/observer-metrics.js';
import { observe } from '../../src/observer/pipeline.js';
import { FileSource } from '../../src/observer/sources/file-source.js';
import { routeLabel } from '../../src/observer/http-door.js';
import { scrape, valueOf } from '../support/metrics-text.js';
import { type ObserverProcess, startObserverProcess } from '../support/observer-process.js';
import {
  queryState,
  startObserverServer,
  startWorkerProcess,
  waitFor,
  type WorkerProcess,
} from '../support/observer-stack.js';

const host = `services-${process.pid}`;
const TOKEN = 'services-test-token-0123456789';
const GiB = 1024 ** 3;
const logBase = Date.now() - 60 * 60_000;

/** Incident `i` as vLLM V1 prints it (five lines, the OOM on the fourth), two minutes apart in log time. */
function incidentBlock(i: number): string {
  const t = new Date(logBase + i * 120_000).toISOString();
  const oom = torchOutOfMemory({
    gpuIndex: 0,
    triedBytes: (1 + i) * 64 * 1024 ** 2,
    totalBytes: 79.19 * GiB,
    freeBytes: 0.5 * GiB,
    otherProcesses: [],
    processInUseBytes: 78 * GiB,
    allocatedBytes: 75 * GiB,
    privatePoolBytes: 0,
    reservedUnallocatedBytes: 1 * GiB,
  });
  return [
    `${t} ERROR 11-28 03:00:00 [core.py:700] EngineCore encountered a fatal error.`,
    `${t} Traceback (most recent call last):`,
    `${t}   File "/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py", line 691, in run_engine_core`,
    `${t} torch.OutOfMemoryError: ${oom}`,
    `${t} INFO 11-28 03:00:00 [loggers.py:123] Engine 000: Avg prompt throughput: 0.0 tokens/s`,
    '',
  ].join('\n');
}

const entry = (name: string, port: number, log: string | null) =>
  [
    `  - name: ${name}`,
    `    config: ${name}/config.yaml`,
    `    restart: [systemctl, restart, vllm@${name}]`,
    `    url: http://127.0.0.1:${port}`,
    `    gpus: [${port - 8001}]`,
    ...(log ? [`    log: ${log}`] : []),
  ].join('\n');

describe('symptom ids: the same lines at the same offsets, two services', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'klr-svc-ids-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("each service's ids are its own; the legacy service keeps the single-service release's ids", async () => {
    const path = join(dir, 'vllm.log');
    await writeFile(path, incidentBlock(0) + incidentBlock(1));
    const idsOf = async (service: string | null | undefined) => {
      const ids: string[] = [];
      await observe({
        source: new FileSource({ path, fromStart: true, once: true }),
        host: 'gpu-1',
        ...(service === undefined ? {} : { service }),
        onIncident: (_incident, symptom) => void ids.push(symptom.id),
      });
      return ids;
    };
    const before = await idsOf(undefined); // the pipeline as every earlier release called it
    const legacy = await idsOf(null);
    const a = await idsOf('a');
    const b = await idsOf('b');
    assert.equal(before.length, 2);
    assert.deepEqual(legacy, before, 'the legacy ids are unchanged: re-read lines still count once');
    assert.equal(new Set([...legacy, ...a, ...b]).size, 6, JSON.stringify({ legacy, a, b }));
    for (const id of [...a, ...b]) assert.match(id, /^obs\/gpu-1\/[0-9a-f]{16}\/\d+$/);
    assert.deepEqual(await idsOf('a'), a, 'stable across runs');
  });

  test('routing a label: hostile and look-alike labels are refused, never echoed at length', () => {
    const services = [
      { name: 'a', legacyIds: false },
      { name: 'b', legacyIds: false },
    ];
    assert.deepEqual(routeLabel(services, 'a'), { ok: true, service: 'a' });
    const unlabelled = routeLabel(services, null);
    assert.equal(unlabelled.ok, false);
    assert.match(!unlabelled.ok ? unlabelled.error : '', /several \("a", "b"\)/);
    for (const label of ['../a', 'a/../b', 'A', 'а', 'ａ', 'a\u200b', '', ' a', 'a'.repeat(10_000)]) {
      const r = routeLabel(services, label);
      assert.equal(r.ok, false, JSON.stringify(label.slice(0, 20)));
      if (r.ok) continue;
      assert.ok(r.error.length < 400, `short: ${r.error.length}`);
      assert.match(r.error, /expected a service name/);
      assert.match(r.expected, /one of "a", "b"/);
    }
    assert.match((routeLabel(services, 'c') as { error: string }).error, /unknown service "c": .*"a", "b"/);
    // The legacy service takes what names none; a door that knows no services takes a good label as it is.
    assert.deepEqual(routeLabel([{ name: 'vllm', legacyIds: true }], null), { ok: true, service: null });
    assert.deepEqual(routeLabel([{ name: 'vllm', legacyIds: true }], 'vllm'), { ok: true, service: null });
    assert.deepEqual(routeLabel([], 'x-1'), { ok: true, service: 'x-1' });
  });
});

describe('the daemon with two services following their logs, a third without one', () => {
  let dir: string;
  let stateDir: string;
  let server: DevServerHandle;
  let worker: WorkerProcess;
  let daemon: ObserverProcess | undefined;
  let env: Record<string, string>;
  const aLog = () => join(dir, 'logs', 'a.log');
  const bLog = () => join(dir, 'logs', 'b.log');

  const count = async (service: string | null): Promise<number> => {
    try {
      return (await queryState(server.address, host, 'vllm_oom', service)).count24h;
    } catch {
      return 0; // no workflow yet
    }
  };
  const counts = async () => ({ legacy: await count(null), a: await count('a'), b: await count('b') });
  const logLines = () =>
    (daemon?.output() ?? '')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${daemon!.doorUrl}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'klr-svc-daemon-'));
    stateDir = join(dir, 'observer-state');
    server = await startObserverServer(dir);
    worker = await startWorkerProcess({ address: server.address, host, dataDir: dir });
    await mkdir(join(dir, 'logs'));
    const servicesFile = join(dir, 'services.yaml');
    await writeFile(
      servicesFile,
      `services:\n${[entry('a', 8001, 'logs/a.log'), entry('b', 8002, 'logs/b.log'), entry('c', 8003, null)].join('\n')}\n`,
    );
    // A record the single-service release spooled while Temporal was away: no service field.
    await mkdir(join(stateDir, 'spool'), { recursive: true });
    const old = {
      host,
      symptom: {
        kind: 'vllm_oom',
        id: 'obs/previous-release/1',
        source: 'observer',
        details: { allocMb: 64 },
      },
      spooledAt: Date.now() - 60_000,
    };
    // And one this release spooled for service b (its service field names the workflow-id service).
    const forB = {
      host,
      service: 'b',
      symptom: { kind: 'vllm_oom', id: 'obs/spooled-for-b/1', source: 'observer', details: { allocMb: 32 } },
      spooledAt: Date.now() - 30_000,
    };
    await writeFile(
      join(stateDir, 'spool', 'segment-000000000001.jsonl'),
      `${JSON.stringify(old)}\n${JSON.stringify(forB)}\n`,
    );
    env = {
      TEMPORAL_ADDRESS: server.address,
      KLR_HOST: host,
      KLR_DATA_DIR: dir,
      KLR_OBSERVER_STATE_DIR: stateDir,
      KLR_SERVICES_FILE: servicesFile,
      KLR_OBSERVER_FROM_START: '1',
      KLR_HTTP_DOOR: '1',
      KLR_HTTP_DOOR_ADDR: '127.0.0.1:0',
      KLR_HTTP_DOOR_TOKEN: TOKEN,
      KLR_OBSERVER_METRICS_ADDR: `127.0.0.1:${await pickFreePort()}`,
    };
    // The same two incidents in both logs: the same lines at the same offsets.
    await writeFile(aLog(), incidentBlock(0) + incidentBlock(1));
    await writeFile(bLog(), incidentBlock(0) + incidentBlock(1));
  });

  after(async () => {
    await daemon?.stop();
    await worker?.stop();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test("each incident reaches its own service's workflow; the old spool record the legacy one", async () => {
    daemon = await startObserverProcess(env);
    await waitFor('every incident and both spooled records counted', async () => {
      const c = await counts();
      return c.legacy === 1 && c.a === 2 && c.b === 3 ? c : undefined;
    });
    const incidents = logLines().filter((l) => l.msg === 'incident');
    const of = (s: string) => incidents.filter((l) => l.service === s);
    assert.deepEqual(
      of('a').map((l) => l.line),
      [4, 9],
    );
    assert.deepEqual(
      of('b').map((l) => l.line),
      [4, 9],
    );
    const ids = incidents.map((l) => String(l.id));
    assert.equal(new Set(ids).size, 4, `ids differ between the services: ${ids.join(' ')}`);
    // The service without a log is reported at start, and not followed.
    const c = logLines().find((l) => l.service === 'c' && /no "log:"/.test(String(l.msg)));
    assert.ok(c, 'a line says that service c has no log');
    const started = logLines().find((l) => l.msg === 'observer started');
    assert.deepEqual(started?.unfollowed, ['c']);
    // A position file per service, named by it; no file shared, none under the one-service name.
    await waitFor('both positions saved', async () => {
      const names = (await readdir(stateDir)).filter((n) => n.startsWith('position-')).sort();
      return names.length === 2 &&
        /^position-a-[0-9a-f]{16}\.json$/.test(names[0]!) &&
        /^position-b-[0-9a-f]{16}\.json$/.test(names[1]!)
        ? names
        : undefined;
    });
    // The metrics say whose lines and incidents they are.
    const e = await scrape(`http://${env.KLR_OBSERVER_METRICS_ADDR}/metrics`);
    for (const service of ['a', 'b']) {
      assert.equal(valueOf(e, M.linesRead.name, { source: 'file', service }), 10, service);
      assert.equal(valueOf(e, M.incidents.name, { kind: 'vllm_oom', family: 'torch_oom', service }), 2);
    }
    assert.equal(valueOf(e, M.linesRead.name, { source: 'file', service: 'c' }), undefined);
  });

  test('the HTTP door: ?service= routes; unknown, invalid and missing names are 400s that say why', async () => {
    const symptom = (id: string) => ({ kind: 'vllm_oom', id, details: { allocMb: 128 } });
    const good = await post('/v1/symptoms?service=a', symptom('door-a-1'));
    assert.equal(good.status, 202, JSON.stringify(good.body));
    assert.equal(good.body.service, 'a');
    await waitFor('counted for a', async () => ((await count('a')) === 3 ? true : undefined));

    const unknown = await post('/v1/symptoms?service=nope', symptom('door-x-1'));
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.field, 'service');
    assert.match(String(unknown.body.error), /unknown service "nope": this host runs "a", "b", "c"/);
    assert.deepEqual(unknown.body.services, ['a', 'b', 'c']);

    const missing = await post('/v1/symptoms', symptom('door-x-2'));
    assert.equal(missing.status, 400);
    assert.match(String(missing.body.error), /no service named: this host runs several/);

    const hostile = ['../a', 'a/../../etc', '%2e%2e%2fa', 'а', 'ａ', 'A', 'x'.repeat(10_000)];
    for (const label of hostile) {
      const res = await post(
        `/v1/symptoms?${new URLSearchParams({ service: label }).toString()}`,
        symptom('door-x-3'),
      );
      assert.equal(res.status, 400, label.slice(0, 20));
      assert.equal(res.body.field, 'service');
      assert.match(String(res.body.error), /expected a service name of 1-63 characters/);
      assert.ok(String(res.body.error).length < 400, 'a long label is not echoed whole');
    }
    // None of them reached any workflow.
    assert.deepEqual(await counts(), { legacy: 1, a: 3, b: 3 });
  });

  test('Alertmanager: the service label routes each alert; a bad one is skipped with its reason, the rest go through', async () => {
    const startsAt = new Date(Date.now() - 30_000).toISOString();
    const alert = (fingerprint: string, labels: Record<string, string>) => ({
      status: 'firing',
      labels: { alertname: 'VllmOom', kloros_kind: 'vllm_oom', ...labels },
      annotations: { summary: 'vLLM ran out of GPU memory' },
      startsAt,
      fingerprint,
    });
    const res = await post('/v1/alertmanager', {
      version: '4',
      status: 'firing',
      receiver: 'kloros',
      alerts: [
        alert('f1good', { service: 'b' }),
        alert('f2unknown', { service: 'nope' }),
        alert('f3none', {}),
        alert('f4dots', { service: '../b' }),
        alert('f5long', { service: 'b'.repeat(10_000) }),
        alert('f6lookalike', { service: 'ь' }),
      ],
    });
    assert.equal(res.status, 202, JSON.stringify(res.body).slice(0, 500));
    assert.equal(res.body.accepted, 1);
    const skipped = res.body.skipped as { fingerprint: string; reason: string }[];
    const reason = (f: string) => skipped.find((s) => s.fingerprint === f)?.reason ?? '';
    assert.equal(skipped.length, 5);
    assert.match(reason('f2unknown'), /^label service: unknown service "nope": this host runs "a", "b", "c"/);
    assert.match(reason('f3none'), /^label service: no service named: this host runs several/);
    for (const f of ['f4dots', 'f5long', 'f6lookalike']) {
      assert.match(reason(f), /expected a service name of 1-63 characters/, f);
      assert.ok(reason(f).length < 500, `${f}: short`);
    }
    await waitFor('counted for b', async () => ((await count('b')) === 4 ? true : undefined));
    assert.deepEqual(await counts(), { legacy: 1, a: 3, b: 4 });
    // All of them unusable: a 400 with the reasons, nothing counted.
    const none = await post('/v1/alertmanager', {
      version: '4',
      status: 'firing',
      alerts: [alert('f7none', {})],
    });
    assert.equal(none.status, 400);
    assert.match(JSON.stringify(none.body.skipped), /no service named/);
  });

  test('after a restart each service resumes from its own position: only the new incident is read', async () => {
    await daemon?.stop();
    assert.equal((await daemon!.proc).exitCode, 0);
    await appendFile(aLog(), incidentBlock(2));
    daemon = await startObserverProcess(env);
    await waitFor('the new incident of a counted', async () => ((await count('a')) === 4 ? true : undefined));
    // Logged once the delivery has taken it, so maybe a moment after it was counted.
    const incidents = await waitFor('the incident logged', async () => {
      const logged = logLines().filter((l) => l.msg === 'incident');
      return logged.length > 0 ? logged : undefined;
    });
    assert.deepEqual(
      incidents.map((l) => [l.service, l.line]),
      [['a', 14]],
    );
    assert.deepEqual(await counts(), { legacy: 1, a: 4, b: 4 });
  });
});
