// The HTTP door against hostile clients, over real sockets on 127.0.0.1: connections that idle or stall,
// more connections than it takes, webhooks that carry more alerts than the rate limit admits, times
// written several ways, and a few hundred random hostile bodies. The delivery behind it is a recording
// stand-in that checks each symptom as the real one does first (symptomProblem): what is under test is
// the door's own parsing, admission and connection handling. The end-to-end counterparts (a real dev
// server and worker) are in test/observer/http-door.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type Socket, connect } from 'node:net';
import type { DeliveryStats, IdentifiedSymptom, SubmitOutcome } from '../../src/observer/delivery.js';
import { symptomProblem } from '../../src/observer/delivery.js';
import { type HttpDoor, startHttpDoor } from '../../src/observer/http-door.js';
import { type HttpDoorSettings, loadHttpDoorSettings } from '../../src/observer/observer-settings.js';
import { alertToSymptom, normalizeStartsAt } from '../../src/observer/alertmanager.js';
import { parseSymptom } from '../../src/domain/symptom.js';
import { prng, type Prng } from '../support/prng.js';

const TOKEN = 'adversarial-token-0123456789';
const HOST = 'gpu-door';
const logged: string[] = [];
const log = {
  info: (o: object, m: string) => void logged.push(`info ${m} ${JSON.stringify(o)}`),
  warn: (o: object, m: string) => void logged.push(`warn ${m} ${JSON.stringify(o)}`),
  error: (o: object, m: string) => void logged.push(`error ${m} ${JSON.stringify(o)}`),
};

/** Records what the door hands over; refuses what the real delivery would refuse, the same way. */
class RecordingDelivery {
  readonly delivered: { symptom: IdentifiedSymptom; host: string }[] = [];
  /** How long each submit takes (a slow Temporal). */
  delayMs = 0;
  async submit(symptom: IdentifiedSymptom, host = HOST): Promise<SubmitOutcome> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const problem = symptomProblem(host, symptom, Date.now()); // the real delivery's first step
    if (problem !== null) return { status: 'rejected', id: symptom.id, host, reason: problem };
    this.delivered.push({ symptom, host });
    return { status: 'delivered', id: symptom.id, host, result: null };
  }
  stats(): DeliveryStats {
    const delivered = this.delivered.length;
    return {
      delivered,
      spooled: 0,
      rejected: 0,
      spoolFull: 0,
      pending: 0,
      pendingBytes: 0,
      maxBytes: 1,
      unreachable: null,
    };
  }
}

function settings(overrides: Partial<HttpDoorSettings> = {}): HttpDoorSettings {
  const loaded = loadHttpDoorSettings({ KLR_HTTP_DOOR: '1', KLR_HTTP_DOOR_TOKEN: TOKEN });
  assert.ok(loaded);
  return { ...loaded, listen: { host: '127.0.0.1', port: 0 }, ...overrides };
}

async function withDoor(
  overrides: Partial<HttpDoorSettings>,
  run: (door: HttpDoor, delivery: RecordingDelivery, clock: { ms: number }) => Promise<void>,
): Promise<void> {
  const delivery = new RecordingDelivery();
  const clock = { ms: 1_000_000 };
  const door = await startHttpDoor({
    settings: settings(overrides),
    delivery,
    host: HOST,
    log,
    now: () => clock.ms,
  });
  try {
    await run(door, delivery, clock);
  } finally {
    // A connection the door failed to close must not hold up the next test.
    for (const socket of rawSockets.splice(0)) socket.destroy();
    await door.close();
  }
}

async function post(
  door: HttpDoor,
  path: string,
  body: string | Buffer,
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${door.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(10_000), // an answer, never a hang
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Record<string, unknown>, headers: res.headers };
}

const rawSockets: Socket[] = [];

/** A raw TCP connection to the door that records what comes back and when it is closed. */
function rawConnection(door: HttpDoor): Promise<{
  socket: Socket;
  received: () => string;
  closed: Promise<number>;
}> {
  return new Promise((resolve, reject) => {
    const opened = Date.now();
    let received = '';
    const socket = connect(door.address.port, door.address.address);
    rawSockets.push(socket);
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - opened)));
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined); // a reset is one way of being closed
    socket.once('connect', () => resolve({ socket, received: () => received, closed }));
    socket.once('error', reject);
  });
}

/** Resolves with the close time, or null when the connection is still open after `ms`. */
function closedWithin(closed: Promise<number>, ms: number): Promise<number | null> {
  return Promise.race([closed, new Promise<null>((r) => setTimeout(() => r(null), ms))]);
}

function firingAlert(fingerprint: string, startsAt: string, labels: Record<string, string> = {}) {
  return {
    status: 'firing',
    labels: { alertname: 'VllmOom', kloros_kind: 'vllm_oom', host: 'gpu-7', ...labels },
    annotations: { summary: 'vLLM ran out of GPU memory' },
    startsAt,
    endsAt: '0001-01-01T00:00:00Z',
    fingerprint,
  };
}

function webhook(alerts: unknown[]): string {
  return JSON.stringify({ version: '4', status: 'firing', receiver: 'kloros', groupKey: '{}', alerts });
}

const minutesAgo = (n: number) => new Date(Date.now() - n * 60_000).toISOString();

describe('idle and stalled connections', () => {
  test('a connection that sends nothing is closed after the idle timeout', async () => {
    await withDoor({ idleTimeoutMs: 300 }, async (door) => {
      const c = await rawConnection(door);
      const at = await closedWithin(c.closed, 3000);
      assert.ok(at !== null, 'still open 3 s after connecting without sending a byte');
      assert.ok(at >= 250, `closed after ${at} ms, before the idle timeout`);
    });
  });

  test('a request that stalls half-way through its headers, or its body, is closed', async () => {
    await withDoor({ idleTimeoutMs: 300 }, async (door) => {
      const headers = await rawConnection(door);
      headers.socket.write('POST /v1/symptoms HTTP/1.1\r\nHost: door\r\nContent-Ty');
      const body = await rawConnection(door);
      body.socket.write(
        `POST /v1/symptoms HTTP/1.1\r\nHost: door\r\nAuthorization: Bearer ${TOKEN}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"kind":"vllm',
      );
      assert.ok((await closedWithin(headers.closed, 3000)) !== null, 'stalled headers: still open');
      assert.ok((await closedWithin(body.closed, 3000)) !== null, 'stalled body: still open');
      // The door is fine afterwards, and logged no internal failure for either.
      assert.equal((await fetch(`${door.url}/healthz`)).status, 200);
      assert.ok(
        !logged.some((l) => l.startsWith('error')),
        logged.filter((l) => l.startsWith('error')).join('\n'),
      );
    });
  });

  test('a kept-alive connection is closed once idle between requests', async () => {
    await withDoor({ idleTimeoutMs: 300 }, async (door) => {
      const c = await rawConnection(door);
      c.socket.write('GET /healthz HTTP/1.1\r\nHost: door\r\n\r\n');
      // Node adds one second to the advertised keep-alive timeout before it closes.
      const at = await closedWithin(c.closed, 3000);
      assert.match(c.received(), /^HTTP\/1\.1 200 /);
      assert.ok(at !== null, 'a kept-alive connection stayed open 3 s after its last answer');
    });
  });

  test('a slow delivery is not idling: the answer still comes after more than the idle timeout', async () => {
    await withDoor({ idleTimeoutMs: 300 }, async (door, delivery) => {
      delivery.delayMs = 900;
      const started = Date.now();
      const res = await post(door, '/v1/symptoms', JSON.stringify({ kind: 'vllm_oom', id: 'slow-1' }));
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.ok(Date.now() - started >= 900);
      assert.equal(delivery.delivered.length, 1);
    });
  });
});

describe('connection cap', () => {
  test('beyond the cap a new connection is closed at once; those open keep working', async () => {
    await withDoor({ maxConnections: 3, idleTimeoutMs: 10_000 }, async (door) => {
      const open = await Promise.all([1, 2, 3].map(() => rawConnection(door)));
      await new Promise((r) => setTimeout(r, 200)); // the door has accepted all three
      const extra = await rawConnection(door);
      const at = await closedWithin(extra.closed, 2000);
      assert.ok(at !== null, 'the connection over the cap was left open');
      assert.equal(extra.received(), '', 'nothing is read from or answered on it');
      for (const c of open) assert.equal(await closedWithin(c.closed, 0), null, 'an open one was closed');
      open[0]!.socket.write('GET /healthz HTTP/1.1\r\nHost: door\r\nConnection: close\r\n\r\n');
      await closedWithin(open[0]!.closed, 3000);
      assert.match(open[0]!.received(), /^HTTP\/1\.1 200 /);
      assert.ok(
        logged.some((l) => /connection cap reached/.test(l)),
        'the drop is logged',
      );
      // With one closed, a new connection is served again.
      await new Promise((r) => setTimeout(r, 100));
      const again = await rawConnection(door);
      again.socket.write('GET /healthz HTTP/1.1\r\nHost: door\r\nConnection: close\r\n\r\n');
      await closedWithin(again.closed, 3000);
      assert.match(again.received(), /^HTTP\/1\.1 200 /);
      for (const c of open) c.socket.destroy();
    });
  });
});

describe('rate limit per symptom', () => {
  test('a webhook needs one token per firing alert, all or none', async () => {
    await withDoor({ burst: 3, ratePerSecond: 1 }, async (door, delivery, clock) => {
      const alerts = (n: number, tag: string) =>
        Array.from({ length: n }, (_, i) => firingAlert(`${tag}${i}`, minutesAgo(1)));
      // More firing alerts than the bucket holds: refused whole, saying which setting to raise.
      const tooBig = await post(door, '/v1/alertmanager', webhook(alerts(4, 'a')));
      assert.equal(tooBig.status, 413, JSON.stringify(tooBig.body));
      assert.match(String(tooBig.body.error), /4 firing alerts .* KLR_HTTP_DOOR_BURST/);
      assert.equal(delivery.delivered.length, 0);

      clock.ms += 10_000; // full again
      const three = await post(door, '/v1/alertmanager', webhook(alerts(3, 'b')));
      assert.equal(three.status, 202, JSON.stringify(three.body));
      assert.equal(delivery.delivered.length, 3);

      // 1.5 tokens back: the request's own token is there, the second is not — none is delivered.
      clock.ms += 1500;
      const two = await post(door, '/v1/alertmanager', webhook(alerts(2, 'c')));
      assert.equal(two.status, 429, JSON.stringify(two.body));
      assert.equal(two.headers.get('retry-after'), '2');
      assert.match(String(two.body.error), /none was delivered/);
      assert.equal(delivery.delivered.length, 3);

      clock.ms += 2000;
      assert.equal((await post(door, '/v1/alertmanager', webhook(alerts(2, 'c')))).status, 202);
      assert.equal(delivery.delivered.length, 5);
      // The same alert twice in one webhook is one symptom and one token; resolved alerts cost nothing.
      clock.ms += 3000;
      const dup = firingAlert('d0', minutesAgo(2));
      const mixed = await post(
        door,
        '/v1/alertmanager',
        webhook([dup, dup, { ...firingAlert('d1', minutesAgo(2)), status: 'resolved' }]),
      );
      assert.equal(mixed.status, 202, JSON.stringify(mixed.body));
      assert.deepEqual([mixed.body.accepted, mixed.body.ignored], [1, 1]);
      // Never more delivered than the bucket allows: 3 at once plus 1 a second of (fake) time.
      assert.ok(delivery.delivered.length <= 3 + (clock.ms - 1_000_000) / 1000);
    });
  });
});

describe('Alertmanager startsAt', () => {
  test('one instant written four ways is one id; the spelling Alertmanager sends keeps its id', () => {
    const spellings = [
      '2026-11-28T03:04:05Z',
      '2026-11-28T03:04:05.000Z',
      '2026-11-28T03:04:05+00:00',
      '2026-11-28T05:04:05+02:00',
      '2026-11-27T23:34:05-03:30',
    ];
    const ids = spellings.map((startsAt) => {
      const c = alertToSymptom(firingAlert('abc', startsAt) as never, {
        kindLabel: 'kloros_kind',
        defaultHost: HOST,
      });
      assert.ok(c.ok, JSON.stringify(c));
      assert.equal(c.symptom.eventTime, '2026-11-28T03:04:05Z');
      return c.symptom.id;
    });
    assert.deepEqual(new Set(ids), new Set(['alertmanager:abc:2026-11-28T03:04:05Z']));
    // Go's RFC3339Nano in UTC, as Alertmanager sends it, is left as it is (ids from before stay valid).
    for (const go of ['2026-11-28T03:04:05.123456789Z', '2026-11-28T03:04:05.12Z', '2026-11-28T03:04:05Z'])
      assert.deepEqual(normalizeStartsAt(go), { ok: true, text: go });
    assert.deepEqual(normalizeStartsAt('2026-11-28T04:04:05.120+01:00'), {
      ok: true,
      text: '2026-11-28T03:04:05.12Z',
    });
    assert.deepEqual(normalizeStartsAt('2026-11-28T03:04:05.1234567891234Z'), {
      ok: true,
      text: '2026-11-28T03:04:05.123456789Z',
    });
  });

  test('a startsAt outside the years 2000-9999 is skipped with the reason, not a crash', async () => {
    for (const startsAt of ['0001-01-01T00:00:00Z', '1999-12-31T23:59:59Z', '9999-12-31T23:59:59-01:00']) {
      const c = alertToSymptom(firingAlert('abc', startsAt) as never, {
        kindLabel: 'kloros_kind',
        defaultHost: HOST,
      });
      assert.ok(!c.ok);
      assert.match(c.reason, /^startsAt ".*": expected a time in the years 2000 to 9999/);
    }
    await withDoor({}, async (door, delivery) => {
      const res = await post(
        door,
        '/v1/alertmanager',
        webhook([firingAlert('zero', '0001-01-01T00:00:00Z'), firingAlert('ok', minutesAgo(3))]),
      );
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.equal(res.body.accepted, 1);
      assert.match(JSON.stringify(res.body.skipped), /zero.*years 2000 to 9999/);
      assert.equal(delivery.delivered.length, 1);
    });
  });

  test('the four spellings through the door: one id', async () => {
    await withDoor({}, async (door, delivery) => {
      const at = new Date(Math.floor((Date.now() - 3_600_000) / 1000) * 1000);
      const z = at.toISOString().replace('.000Z', 'Z');
      const plus2 = new Date(at.getTime() + 2 * 3_600_000).toISOString().replace('.000Z', '+02:00');
      for (const startsAt of [z, at.toISOString(), z.replace('Z', '+00:00'), plus2]) {
        const res = await post(door, '/v1/alertmanager', webhook([firingAlert('f1', startsAt)]));
        assert.equal(res.status, 202, JSON.stringify(res.body));
      }
      assert.deepEqual([...new Set(delivery.delivered.map((d) => d.symptom.id))], [`alertmanager:f1:${z}`]);
    });
  });
});

describe('never a 500', () => {
  test('an eventTime beyond what a Date can hold is a 400 with a reason', async () => {
    await withDoor({}, async (door, delivery) => {
      for (const eventTime of [9_000_000_000_000_000, 8_640_000_000_000_001]) {
        const res = await post(
          door,
          '/v1/symptoms',
          JSON.stringify({ kind: 'vllm_oom', id: 'x', eventTime }),
        );
        assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${JSON.stringify(res.body)}`);
        assert.equal(typeof res.body.error, 'string');
      }
      const alert = firingAlert('big', minutesAgo(1));
      const res = await post(door, '/v1/alertmanager', webhook([alert]));
      assert.equal(res.status, 202);
      assert.equal(delivery.delivered.length, 1);
    });
  });

  test('a few hundred hostile bodies: every answer 2xx or 4xx, none hangs, /healthz still answers', async () => {
    const r = prng(Number(process.env.KLR_TEST_SEED ?? 137));
    await withDoor(
      { maxBodyBytes: 1024 * 1024, burst: 100_000, ratePerSecond: 100_000 },
      async (door, delivery) => {
        const seen = new Map<number, number>();
        for (let i = 0; i < 300; i++) {
          const path = r.chance(0.5) ? '/v1/symptoms' : '/v1/alertmanager';
          const body = hostileBody(r, path);
          const res = await post(door, path, body).catch((err: unknown) => {
            throw new Error(`seed ${r.seed} body ${i} (${body.slice(0, 200).toString()}): ${String(err)}`);
          });
          seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
          assert.ok(
            res.status >= 200 && res.status < 500,
            `seed ${r.seed} body ${i} → ${res.status} ${JSON.stringify(res.body)}: ${body.slice(0, 300).toString()}`,
          );
        }
        assert.ok((seen.get(400) ?? 0) > 100, `mostly refused: ${JSON.stringify([...seen])}`);
        assert.ok((seen.get(202) ?? 0) > 0, `some accepted: ${JSON.stringify([...seen])}`);
        // What got through is valid by the shared schema.
        for (const { symptom } of delivery.delivered)
          assert.ok(parseSymptom(symptom).ok, JSON.stringify(symptom));
        const health = await fetch(`${door.url}/healthz`, { signal: AbortSignal.timeout(5000) });
        assert.equal(health.status, 200);
      },
    );
  });
});

// ---- hostile bodies ------------------------------------------------------------------------------------

const DEEP = 10_000;
const deepArray = '['.repeat(DEEP) + ']'.repeat(DEEP);
const deepObject = '{"a":'.repeat(DEEP) + '1' + '}'.repeat(DEEP);

/** JSON texts (not values: some are not what JSON.stringify would write) that a hostile sender may use. */
const HOSTILE_JSON = [
  'null',
  'true',
  '0',
  '-0',
  '1e308',
  '-1e308',
  '1e-400',
  '9000000000000000',
  '-9000000000000000',
  '8640000000000001',
  '9007199254740993',
  '123456789012345678901234567890',
  '1.5',
  '"NaN"',
  '"Infinity"',
  '"-Infinity"',
  '"9e999"',
  '"0x10"',
  '""',
  '" "',
  '"\\u202eoom"',
  '"\\ud800"',
  '"\\udfff\\ud800"',
  '"\\u0000"',
  '"\\u001b[31mred"',
  '"\\ufeff"',
  '"👾🧨"',
  '"a\\nb"',
  '"' + 'x'.repeat(5000) + '"',
  '"2026-11-28T03:04:05Z"',
  '"0001-01-01T00:00:00Z"',
  '"9999-12-31T23:59:59-01:00"',
  '"+275760-09-13T00:00:00Z"',
  '"2026-02-30T00:00:00Z"',
  '[]',
  '{}',
  '[null]',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{}}}',
  deepArray,
  deepObject,
];

/** Numbers that look valid to a schema that only asks for an integer ≥ 0, and some that do not. */
const HOSTILE_NUMBERS = HOSTILE_JSON.filter((t) => /^-?\d/.test(t));

function hostile(r: Prng): string {
  return r.pick(HOSTILE_JSON);
}

/** For a numeric field: a hostile number half the time. */
function hostileNumber(r: Prng): string {
  return r.chance(0.5) ? r.pick(HOSTILE_NUMBERS) : hostile(r);
}

/** A body for `path`: sometimes plain garbage, mostly a plausible shape with hostile parts. */
function hostileBody(r: Prng, path: string): string {
  const roll = r.int(0, 9);
  if (roll === 0) return hostile(r);
  if (roll === 1)
    return r.pick(['{', '{"kind":', '\u0000', '\ud800', '[1,]', '{"a":1}{}', '\u202e{}', 'NaN']);
  if (path === '/v1/symptoms') {
    const fields: Record<string, string> = {
      kind: r.chance(0.6) ? '"vllm_oom"' : hostile(r),
      id: r.chance(0.5) ? `"fuzz-${r.int(0, 1e6)}"` : hostile(r),
    };
    if (r.chance(0.6)) fields.eventTime = r.chance(0.3) ? String(Date.now() - 60_000) : hostileNumber(r);
    if (r.chance(0.6)) {
      const key = r.pick(['allocMb', 'freeMb', 'deficitMb', 'gpu', 'text', 'family', 'estimatedMaxModelLen']);
      fields.details = `{"${key}":${r.chance(0.3) ? String(r.int(0, 4096)) : hostileNumber(r)}}`;
    }
    if (r.chance(0.2)) fields[r.pick(['source', 'colour', '__proto__', '\u202e'])] = hostile(r);
    return `{${Object.entries(fields)
      .map(([k, v]) => `${JSON.stringify(k)}:${v}`)
      .join(',')}}`;
  }
  const alerts = Array.from({ length: r.int(0, 4) }, () => {
    const parts: Record<string, string> = {
      status: r.chance(0.8) ? '"firing"' : hostile(r),
      labels: r.chance(0.6)
        ? `{"kloros_kind":${r.chance(0.7) ? '"vllm_oom"' : hostile(r)},"host":${r.chance(0.6) ? '"gpu-3"' : hostile(r)}}`
        : hostile(r),
      startsAt: r.chance(0.5) ? JSON.stringify(minutesAgo(r.int(1, 600))) : hostile(r),
      fingerprint: r.chance(0.7) ? `"fp${r.int(0, 99)}"` : hostile(r),
    };
    if (r.chance(0.3)) parts.annotations = `{"summary":${hostile(r)}}`;
    return `{${Object.entries(parts)
      .map(([k, v]) => `"${k}":${v}`)
      .join(',')}}`;
  });
  const version = r.chance(0.85) ? '"4"' : hostile(r);
  const list = r.chance(0.85) ? `[${alerts.join(',')}]` : hostile(r);
  return `{"version":${version},"status":"firing","alerts":${list}}`;
}

before(() => {
  logged.length = 0;
});
after(() => {
  // The token never reaches the log, whatever was sent.
  assert.ok(!logged.some((l) => l.includes(TOKEN)));
});
