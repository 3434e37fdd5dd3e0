// The HTTP door on 127.0.0.1 in front of the real delivery, a real dev server and a real worker: what it
// accepts is counted by the HealingWorkflow once, and every refusal says why, with the right status.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DevServerHandle } from '../../src/servers/dev-server.js';
import { loadTemporalTarget } from '../../src/config/temporal-connection.js';
import { SettingsError } from '../../src/config/settings.js';
import { type SymptomDelivery, createSymptomDelivery } from '../../src/observer/delivery.js';
import {
  type HttpDoor,
  fieldAndExpected,
  isJsonContentType,
  startHttpDoor,
  tokenMatches,
} from '../../src/observer/http-door.js';
import { type HttpDoorSettings, loadHttpDoorSettings } from '../../src/observer/observer-settings.js';
import { TokenBucket } from '../../src/observer/token-bucket.js';
import { alertToSymptom, hostFromInstance } from '../../src/observer/alertmanager.js';
import {
  queryState,
  startObserverServer,
  startWorkerProcess,
  waitFor,
  type WorkerProcess,
} from '../support/observer-stack.js';

const host = `door-${process.pid}`;
const TOKEN = 'test-token-0123456789abcdef';
let dir: string;
let server: DevServerHandle;
let worker: WorkerProcess;
let delivery: SymptomDelivery;
let door: HttpDoor;
const logged: string[] = [];
const log = {
  debug: (o: object, m: string) => void logged.push(`${m} ${JSON.stringify(o)}`),
  info: (o: object, m: string) => void logged.push(`${m} ${JSON.stringify(o)}`),
  warn: (o: object, m: string) => void logged.push(`${m} ${JSON.stringify(o)}`),
  error: (o: object, m: string) => void logged.push(`${m} ${JSON.stringify(o)}`),
};

function doorSettings(overrides: Partial<HttpDoorSettings> = {}): HttpDoorSettings {
  const settings = loadHttpDoorSettings({ KLR_HTTP_DOOR: '1', KLR_HTTP_DOOR_TOKEN: TOKEN });
  assert.ok(settings);
  return { ...settings, listen: { host: '127.0.0.1', port: 0 }, ...overrides };
}

async function post(
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  base = door.url,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

/** A body sent in chunks without Content-Length, over a raw request: the door must stop it at the limit. */
function postChunked(path: string, totalBytes: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${door.url}${path}`);
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The door closes the connection after its 413; a write racing that close may fail. That is fine.
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    let sent = 0;
    const pump = () => {
      while (sent < totalBytes) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

function alert(
  fingerprint: string,
  status: 'firing' | 'resolved',
  labels: Record<string, string>,
  startsAt: string,
) {
  return {
    status,
    labels: { alertname: 'VllmOom', ...labels },
    annotations: { summary: 'vLLM ran out of GPU memory\non gpu 0' },
    startsAt,
    endsAt: '0001-01-01T00:00:00Z',
    generatorURL: 'http://prometheus:9090/graph',
    fingerprint,
  };
}

function webhook(alerts: unknown[]) {
  return {
    version: '4',
    groupKey: '{}:{alertname="VllmOom"}',
    truncatedAlerts: 0,
    status: 'firing',
    receiver: 'kloros',
    groupLabels: { alertname: 'VllmOom' },
    commonLabels: {},
    commonAnnotations: {},
    externalURL: 'http://alertmanager:9093',
    alerts,
  };
}

describe('settings and pure parts', () => {
  test('the door is off by default; on, it binds 127.0.0.1:8787 unless told otherwise', () => {
    assert.equal(loadHttpDoorSettings({}), null);
    const on = loadHttpDoorSettings({ KLR_HTTP_DOOR: '1', KLR_HTTP_DOOR_TOKEN: TOKEN });
    assert.deepEqual(on?.listen, { host: '127.0.0.1', port: 8787 });
    assert.equal(on?.maxBodyBytes, 65_536);
    assert.equal(on?.kindLabel, 'kloros_kind');
    const v6 = loadHttpDoorSettings({
      KLR_HTTP_DOOR: 'on',
      KLR_HTTP_DOOR_TOKEN: TOKEN,
      KLR_HTTP_DOOR_ADDR: '[::1]:9000',
    });
    assert.deepEqual(v6?.listen, { host: '::1', port: 9000 });
    assert.throws(
      () =>
        loadHttpDoorSettings({
          KLR_HTTP_DOOR: '1',
          KLR_HTTP_DOOR_TOKEN: TOKEN,
          KLR_HTTP_DOOR_ADDR: 'localhost',
        }),
      /KLR_HTTP_DOOR_ADDR="localhost": expected IP:PORT/,
    );
    assert.throws(
      () => loadHttpDoorSettings({ KLR_HTTP_DOOR: 'maybe' }),
      /KLR_HTTP_DOOR="maybe": expected 1 or 0/,
    );
  });

  test('the door refuses to start without a token, or with a short one, and never echoes it', () => {
    assert.throws(
      () => loadHttpDoorSettings({ KLR_HTTP_DOOR: '1' }),
      (err: unknown) =>
        err instanceof SettingsError &&
        /KLR_HTTP_DOOR_TOKEN="": expected a bearer token of at least 16/.test(err.message),
    );
    assert.throws(
      () => loadHttpDoorSettings({ KLR_HTTP_DOOR: '1', KLR_HTTP_DOOR_TOKEN: 'hunter2secret' }),
      (err: unknown) =>
        err instanceof SettingsError &&
        /<13 characters hidden>/.test(err.message) &&
        !err.message.includes('hunter2'),
    );
  });

  test('token comparison, content types, field and expectation from a reason', () => {
    assert.equal(tokenMatches(TOKEN, TOKEN), true);
    assert.equal(tokenMatches(`${TOKEN}x`, TOKEN), false);
    assert.equal(tokenMatches('', TOKEN), false);
    assert.equal(isJsonContentType('application/json; charset=utf-8'), true);
    assert.equal(isJsonContentType('application/alertmanager+json'), true);
    assert.equal(isJsonContentType('text/plain'), false);
    assert.equal(isJsonContentType(undefined), false);
    assert.deepEqual(fieldAndExpected('details.allocMb: expected a size ≥ 0 MiB; kind: x'), {
      field: 'details.allocMb',
      expected: 'expected a size ≥ 0 MiB',
    });
  });

  test('token bucket: a burst, then one per refill interval, with the wait it needs', () => {
    const bucket = new TokenBucket(2, 0.5, 0);
    assert.deepEqual(bucket.take(0), { ok: true });
    assert.deepEqual(bucket.take(0), { ok: true });
    assert.deepEqual(bucket.take(0), { ok: false, retryAfterMs: 2000 });
    assert.deepEqual(bucket.take(1000), { ok: false, retryAfterMs: 1000 });
    assert.deepEqual(bucket.take(2000), { ok: true });
  });

  test('alerts: kind from the label, host from host/instance, id from fingerprint and start', () => {
    const a = alert(
      'abc123',
      'firing',
      { kloros_kind: 'vllm_oom', instance: 'gpu-7:9100' },
      '2026-11-28T03:04:05.123456789Z',
    );
    const converted = alertToSymptom(a, { kindLabel: 'kloros_kind', defaultHost: 'gpu-1' });
    assert.ok(converted.ok);
    assert.equal(converted.host, 'gpu-7');
    assert.equal(converted.symptom.id, 'alertmanager:abc123:2026-11-28T03:04:05.123456789Z');
    assert.equal(converted.symptom.details?.text, 'vLLM ran out of GPU memory on gpu 0');
    const noKind = alertToSymptom(alert('x1', 'firing', {}, '2026-11-28T03:04:05Z'), {
      kindLabel: 'kloros_kind',
      defaultHost: 'gpu-1',
    });
    assert.deepEqual(noKind, {
      ok: false,
      fingerprint: 'x1',
      reason: 'no "kloros_kind" label to take the symptom kind from',
    });
    assert.equal(hostFromInstance('[fe80::1]:9100'), null);
  });
});

describe('on a real dev server', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'klr-door-'));
    server = await startObserverServer(dir);
    worker = await startWorkerProcess({ address: server.address, host, dataDir: dir });
    delivery = await createSymptomDelivery({
      host,
      target: loadTemporalTarget({ TEMPORAL_ADDRESS: server.address }),
      spoolDir: join(dir, 'spool'),
      log,
      attemptTimeoutMs: 10_000,
    });
    door = await startHttpDoor({ settings: doorSettings(), delivery, host, log });
  });
  after(async () => {
    await door?.close();
    await delivery?.close();
    await worker?.stop();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('it listens on 127.0.0.1 and answers /healthz without a token', async () => {
    assert.equal(door.address.address, '127.0.0.1');
    const res = await fetch(`${door.url}/healthz`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { ok: boolean; spool: { pending: number } };
    assert.equal(body.ok, true);
    assert.equal(body.spool.pending, 0);
  });

  test('202: a symptom is delivered and counted; the same id again counts once', async () => {
    const symptom = { kind: 'vllm_oom', id: 'http-1', details: { allocMb: 1024, family: 'torch_oom' } };
    const first = await post('/v1/symptoms', symptom);
    assert.equal(first.status, 202, JSON.stringify(first.body));
    assert.deepEqual(first.body, { accepted: true, id: 'http-1', host, delivered: true, count: 1 });
    const again = await post('/v1/symptoms', symptom);
    assert.equal(again.status, 202);
    // Idempotency-Key works too, and an id is made up when there is none (and returned).
    const keyed = await post('/v1/symptoms', { kind: 'vllm_oom' }, { 'idempotency-key': 'http-2' });
    assert.equal(keyed.body.id, 'http-2');
    const generated = await post('/v1/symptoms', { kind: 'vllm_oom' });
    assert.match(String(generated.body.id), /^http:[0-9a-f-]{36}$/);
    const state = await queryState(server.address, host);
    assert.equal(state.count24h, 3, 'http-1 once, http-2, and the generated one');
  });

  test('400 names the field and what it expects', async () => {
    const bad = await post('/v1/symptoms', { kind: 'vllm_oom', details: { allocMb: -1 } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, 'details.allocMb');
    assert.equal(bad.body.expected, 'expected a size ≥ 0 MiB');
    const unknown = await post('/v1/symptoms', { kind: 'vllm_oom', colour: 'red' });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.field, 'payload');
    assert.match(String(unknown.body.error), /unknown field\(s\) "colour"/);
    const kind = await post('/v1/symptoms', { kind: 'Bad Kind' });
    assert.equal(kind.body.field, 'kind');
    const notJson = await post('/v1/symptoms', '{"kind":');
    assert.equal(notJson.status, 400);
    assert.match(String(notJson.body.error), /expected valid JSON/);
    const hostBad = await post('/v1/symptoms?host=..%2Fetc', { kind: 'vllm_oom' });
    assert.equal(hostBad.status, 400);
    assert.equal(hostBad.body.field, 'host');
    const future = await post('/v1/symptoms', {
      kind: 'vllm_oom',
      id: 'f',
      eventTime: new Date(Date.now() + 3600_000).toISOString(),
    });
    assert.equal(future.status, 400);
    assert.equal(future.body.field, 'eventTime');
  });

  test('401 without the token or with a wrong one; the token never reaches the log', async () => {
    const none = await fetch(`${door.url}/v1/symptoms`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"kind":"vllm_oom"}',
    });
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="kloros"');
    const wrong = await post(
      '/v1/symptoms',
      { kind: 'vllm_oom' },
      { authorization: `Bearer ${TOKEN.slice(0, -1)}X` },
    );
    assert.equal(wrong.status, 401);
    assert.ok(logged.length > 0);
    assert.ok(
      !logged.some((l) => l.includes(TOKEN) || l.includes(TOKEN.slice(0, -1))),
      'no token in the log',
    );
    assert.ok(!logged.some((l) => /authorization/i.test(l)), 'no Authorization header in the log');
  });

  test('413 for a body over the limit, declared or streamed; 415 for a body that is not JSON', async () => {
    const big = await post('/v1/symptoms', { kind: 'vllm_oom', details: { text: 'x'.repeat(70_000) } });
    assert.equal(big.status, 413);
    assert.match(String(big.body.error), /larger than 65536 bytes/);
    const streamed = await postChunked('/v1/symptoms', 10 * 1024 * 1024);
    assert.equal(streamed.status, 413, streamed.text);
    const text = await post('/v1/symptoms', 'kind=vllm_oom', { 'content-type': 'text/plain' });
    assert.equal(text.status, 415);
  });

  test('404 and 405', async () => {
    const missing = await post('/v1/nothing', {});
    assert.equal(missing.status, 404);
    const wrongMethod = await fetch(`${door.url}/v1/symptoms`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get('allow'), 'POST');
  });

  test('429 with Retry-After once the burst is spent', async () => {
    const tight = await startHttpDoor({
      settings: doorSettings({ burst: 2, ratePerSecond: 0.01 }),
      delivery,
      host,
      log,
    });
    try {
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 3; i++) {
        const res = await post('/v1/symptoms', { kind: 'vllm_oom', id: `rate-${i}` }, {}, tight.url);
        statuses.push(res.status);
        retryAfter = res.headers.get('retry-after') ?? retryAfter;
      }
      assert.deepEqual(statuses, [202, 202, 429]);
      assert.equal(retryAfter, '100');
    } finally {
      await tight.close();
    }
  });

  test('Alertmanager: a firing alert counts once however often the webhook repeats it; resolved ones are ignored', async () => {
    const kind = 'gpu_alert';
    const startsAt = new Date(Date.now() - 60_000).toISOString();
    const firing = alert('f00d', 'firing', { kloros_kind: kind, instance: `${host}:9400` }, startsAt);
    for (let i = 0; i < 3; i++) {
      const res = await post('/v1/alertmanager', webhook([firing]));
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.equal(res.body.accepted, 1);
    }
    const resolved = await post('/v1/alertmanager', {
      ...webhook([{ ...firing, status: 'resolved', endsAt: new Date().toISOString() }]),
      status: 'resolved',
    });
    assert.equal(resolved.status, 202);
    assert.deepEqual([resolved.body.accepted, resolved.body.ignored], [0, 1]);
    const state = await waitFor('alert counted', () => queryState(server.address, host, kind));
    assert.equal(state.count24h, 1);
    assert.equal(state.totals.counted, 1);
    // The same alert firing again later is a new event.
    const later = alert(
      'f00d',
      'firing',
      { kloros_kind: kind, instance: `${host}:9400` },
      new Date().toISOString(),
    );
    assert.equal((await post('/v1/alertmanager', webhook([later]))).status, 202);
    assert.equal((await queryState(server.address, host, kind)).count24h, 2);
  });

  test('Alertmanager: one instant written four ways counts once', async () => {
    const kind = 'gpu_spelling';
    const at = new Date(Math.floor((Date.now() - 120_000) / 1000) * 1000);
    const z = at.toISOString().replace('.000Z', 'Z');
    const plus2 = new Date(at.getTime() + 2 * 3_600_000).toISOString().replace('.000Z', '+02:00');
    for (const startsAt of [z, at.toISOString(), z.replace('Z', '+00:00'), plus2]) {
      const res = await post(
        '/v1/alertmanager',
        webhook([alert('5pe11', 'firing', { kloros_kind: kind, host }, startsAt)]),
      );
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.deepEqual(res.body.ids, [`alertmanager:5pe11:${z}`]);
    }
    const state = await waitFor('alert counted', () => queryState(server.address, host, kind));
    assert.equal(state.count24h, 1);
  });

  test('Alertmanager: each firing alert takes a token, all or none; nothing beyond the limit is counted', async () => {
    const kind = 'gpu_burst';
    const tight = await startHttpDoor({
      settings: doorSettings({ burst: 3, ratePerSecond: 0.01 }),
      delivery,
      host,
      log,
    });
    const startsAt = new Date(Date.now() - 60_000).toISOString();
    const alerts = (n: number, tag: string) =>
      Array.from({ length: n }, (_, i) =>
        alert(`${tag}${i}`, 'firing', { kloros_kind: kind, host }, startsAt),
      );
    try {
      // 4 firing alerts, burst 3: never admissible, refused whole (the request's own token is spent).
      const over = await post('/v1/alertmanager', webhook(alerts(4, 'b')), {}, tight.url);
      assert.equal(over.status, 413, JSON.stringify(over.body));
      // 2 tokens left, 3 alerts: none is taken, and Alertmanager is told to come back.
      const partial = await post('/v1/alertmanager', webhook(alerts(3, 'c')), {}, tight.url);
      assert.equal(partial.status, 429, JSON.stringify(partial.body));
      assert.ok(Number(partial.headers.get('retry-after')) > 0);
      // 1 token left: one alert passes.
      const one = await post('/v1/alertmanager', webhook(alerts(1, 'd')), {}, tight.url);
      assert.equal(one.status, 202, JSON.stringify(one.body));
    } finally {
      await tight.close();
    }
    const state = await waitFor('alert counted', () => queryState(server.address, host, kind));
    assert.equal(state.count24h, 1, 'only the admitted alert reached the workflow');
  });

  test('an eventTime no Date can hold is a 400 with a reason, never a 500', async () => {
    const res = await post('/v1/symptoms', {
      kind: 'vllm_oom',
      id: 'huge-time',
      eventTime: 9_000_000_000_000_000,
    });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(typeof res.body.error, 'string');
    assert.equal((await fetch(`${door.url}/healthz`)).status, 200);
  });

  test('Alertmanager: an alert without the kind label is refused with the reason; a bad payload is a 400', async () => {
    const res = await post(
      '/v1/alertmanager',
      webhook([alert('beef', 'firing', {}, new Date().toISOString())]),
    );
    assert.equal(res.status, 400);
    assert.match(JSON.stringify(res.body.skipped), /no \\"kloros_kind\\" label/);
    const bad = await post('/v1/alertmanager', { version: '3', alerts: [] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, 'version');
  });
});
