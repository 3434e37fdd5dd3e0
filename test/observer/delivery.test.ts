// Delivery on a real dev server with a real worker: Temporal goes away for a while, symptoms are spooled,
// the server comes back on the same SQLite file and port, and every symptom is delivered once, in order.
// Redelivering the same ids counts nothing; a symptom the workflow rejects does not block the spool.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ServiceError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { pickFreePort, type DevServerHandle } from '../../src/servers/dev-server.js';
import { loadTemporalTarget } from '../../src/config/temporal-connection.js';
import {
  type DeliveryLog,
  type IdentifiedSymptom,
  type SymptomDelivery,
  backoffMs,
  classifyDeliveryError,
  createSymptomDelivery,
  deadLetterPath,
  symptomProblem,
} from '../../src/observer/delivery.js';
import { SymptomAddressError } from '../../src/temporal/symptoms.js';
import { Spool } from '../../src/observer/spool.js';
import {
  queryState,
  startObserverServer,
  startWorkerProcess,
  waitFor,
  type WorkerProcess,
} from '../support/observer-stack.js';

const host = `deliv-${process.pid}`;
let dir: string;
let port: number;
let server: DevServerHandle | undefined;
let worker: WorkerProcess | undefined;

/** A logger that keeps what was logged, so the test can read the order of deliveries. */
function recordingLog(): DeliveryLog & { lines: { msg: string; obj: Record<string, unknown> }[] } {
  const lines: { msg: string; obj: Record<string, unknown> }[] = [];
  const push = (obj: object, msg: string) => void lines.push({ msg, obj: obj as Record<string, unknown> });
  return { lines, debug: push, info: push, warn: push, error: push };
}

function oom(id: string, extra: Partial<IdentifiedSymptom> = {}): IdentifiedSymptom {
  return {
    kind: 'vllm_oom',
    id,
    source: 'delivery-test',
    details: { family: 'torch_oom', allocMb: 512 },
    ...extra,
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-delivery-'));
  port = await pickFreePort();
  server = await startObserverServer(dir, port);
  worker = await startWorkerProcess({ address: server.address, host, dataDir: dir });
});

after(async () => {
  await worker?.stop();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('pure parts', () => {
  test('a symptom that can never be delivered is caught before it is spooled', () => {
    const now = Date.parse('2026-11-28T12:00:00Z');
    assert.equal(symptomProblem('gpu-1', oom('a'), now), null);
    assert.match(symptomProblem('../x', oom('a'), now) ?? '', /^host: expected/);
    assert.match(symptomProblem('gpu-1', { kind: 'vllm_oom' }, now) ?? '', /^id: expected/);
    assert.match(
      symptomProblem('gpu-1', { ...oom('a'), details: { allocMb: -1 } }, now) ?? '',
      /details\.allocMb/,
    );
    assert.match(
      symptomProblem('gpu-1', oom('a', { eventTime: '2026-11-28T13:00:00Z' }), now) ?? '',
      /^eventTime: .* in the future/,
    );
  });

  test('errors: a validator rejection and an invalid request are final; anything else waits', () => {
    const rejected = classifyDeliveryError(
      new WorkflowUpdateFailedError(
        'Workflow Update failed',
        ApplicationFailure.create({ message: 'kind: bad' }),
      ),
    );
    assert.deepEqual(rejected, { kind: 'rejected', reason: 'kind: bad' });
    const invalid = Object.assign(new Error('3 INVALID_ARGUMENT: too big'), {
      code: 3,
      details: 'too big',
      metadata: {},
    });
    assert.equal(
      classifyDeliveryError(new ServiceError('Update-With-Start failed', { cause: invalid })).kind,
      'rejected',
    );
    const unavailable = Object.assign(new Error('14 UNAVAILABLE: refused'), {
      code: 14,
      details: 'refused',
      metadata: {},
    });
    assert.equal(classifyDeliveryError(new ServiceError('failed', { cause: unavailable })).kind, 'transient');
    assert.equal(classifyDeliveryError(new Error('connect ECONNREFUSED')).kind, 'transient');
    assert.deepEqual(classifyDeliveryError(new SymptomAddressError('kind "a/b": expected …')), {
      kind: 'rejected',
      reason: 'kind "a/b": expected …',
    });
  });

  test('backoff doubles up to its cap, with jitter', () => {
    assert.equal(
      backoffMs(1, 500, 30_000, () => 0.5),
      500,
    );
    assert.equal(
      backoffMs(3, 500, 30_000, () => 0.5),
      2000,
    );
    assert.equal(
      backoffMs(20, 500, 30_000, () => 0.5),
      30_000,
    );
    assert.equal(
      backoffMs(1, 500, 30_000, () => 0),
      400,
    );
    assert.equal(
      backoffMs(1, 500, 30_000, () => 1),
      600,
    );
    assert.match(
      deadLetterPath('/s', Date.parse('2026-11-28T23:59:00Z')),
      /\/s\/rejected\/2026-11-28\.jsonl$/,
    );
  });
});

/** How long Temporal is down in the spool test. */
const OUTAGE_MS = 60_000;

describe('on a real dev server', () => {
  let delivery: SymptomDelivery;
  const log = recordingLog();

  before(async () => {
    delivery = await createSymptomDelivery({
      host,
      target: loadTemporalTarget({ TEMPORAL_ADDRESS: `127.0.0.1:${port}` }),
      spoolDir: join(dir, 'spool'),
      log,
      attemptTimeoutMs: 5_000,
      backoff: { initialMs: 200, maxMs: 1_000 },
    });
  });
  after(async () => {
    await delivery?.close();
  });

  test('Temporal down for a minute → spooled → server back on the same file and port → each delivered once, in order', async () => {
    const first = await delivery.submit(oom('d-0'));
    assert.equal(first.status, 'delivered');
    assert.equal(first.status === 'delivered' && first.result?.count24h, 1);

    await server?.stop();
    server = undefined;
    const downSince = Date.now();
    const ids = ['d-1', 'd-2', 'd-3', 'd-4', 'd-5'];
    for (const id of ids) {
      const outcome = await delivery.submit(oom(id));
      assert.equal(outcome.status, 'spooled', `${id} while Temporal is down`);
    }
    // A redelivery of an id the workflow has already counted, and one of a spooled id.
    assert.equal((await delivery.submit(oom('d-0'))).status, 'spooled');
    assert.equal((await delivery.submit(oom('d-3'))).status, 'spooled');
    assert.equal(delivery.stats().pending, 7);
    assert.notEqual(delivery.stats().unreachable, null);

    // The spool survives our own restart too: close and reopen the delivery while the server is down.
    await delivery.close();
    delivery = await createSymptomDelivery({
      host,
      target: loadTemporalTarget({ TEMPORAL_ADDRESS: `127.0.0.1:${port}` }),
      spoolDir: join(dir, 'spool'),
      log,
      attemptTimeoutMs: 5_000,
      backoff: { initialMs: 200, maxMs: 1_000 },
    });
    assert.equal(delivery.stats().pending, 7);

    // Temporal stays unreachable for a full minute (issue 7): the drainer keeps retrying with backoff,
    // loses nothing and delivers nothing out of turn.
    await delay(Math.max(0, OUTAGE_MS - (Date.now() - downSince)));
    assert.equal(delivery.stats().pending, 7, 'all still spooled after the outage');
    assert.notEqual(delivery.stats().unreachable, null);
    server = await startObserverServer(dir, port);
    assert.ok(await delivery.whenDrained(120_000), 'the spool drains once Temporal is back');
    const delivered = log.lines.filter((l) => l.msg === 'spooled symptom delivered').map((l) => l.obj.id);
    assert.deepEqual(
      delivered,
      ['d-1', 'd-2', 'd-3', 'd-4', 'd-5', 'd-0', 'd-3'],
      'in the order they were spooled',
    );
    // A redelivered id is answered as a duplicate, with the count as it is then, and not counted again.
    // Right after the server comes back the worker may not poll yet: then the update times out and the
    // symptom goes by signal-with-start ('signalled'), which the workflow also counts once per id (the
    // counts below).
    const outcomes = log.lines
      .filter((l) => l.msg === 'spooled symptom delivered')
      .map((l) => [l.obj.id, l.obj.outcome] as const);
    assert.equal(outcomes.length, 7);
    outcomes.forEach(([id, outcome], i) => {
      const redelivery = i >= 5; // d-0 (counted before the outage) and d-3 again
      const expected = redelivery ? 'duplicate' : 'counted';
      assert.ok(outcome === expected || outcome === 'signalled', `${String(id)}: ${String(outcome)}`);
    });

    const state = await waitFor('state', () => queryState(server!.address, host));
    assert.equal(state.count24h, 6, 'one per distinct symptom');
    assert.equal(state.totals.counted, 6);
  });

  test('redelivering the same ids with Temporal up counts nothing', async () => {
    for (const id of ['d-0', 'd-1', 'd-5']) {
      const outcome = await delivery.submit(oom(id));
      assert.equal(outcome.status, 'delivered');
    }
    const state = await queryState(server!.address, host);
    assert.equal(state.count24h, 6);
    assert.equal(state.totals.counted, 6);
  });

  test('the worker down, the server up: the symptom is signalled instead, and counted once the worker is back', async () => {
    await worker?.stop();
    worker = undefined;
    const outcome = await delivery.submit(oom('w-1'));
    assert.equal(outcome.status, 'delivered');
    assert.equal(outcome.status === 'delivered' && outcome.result, null, 'no answer: no worker to give one');
    assert.equal(delivery.stats().pending, 0, 'durable in Temporal, so not spooled');
    worker = await startWorkerProcess({ address: server!.address, host, dataDir: dir });
    const state = await waitFor('w-1 counted', async () => {
      const s = await queryState(server!.address, host);
      return s.count24h === 7 ? s : undefined;
    });
    assert.equal(state.totals.counted, 7);
  });

  test('a symptom that cannot be valid is rejected with its reason and dead-lettered, never spooled', async () => {
    const outcome = await delivery.submit({ ...oom('bad-1'), details: { allocMb: -5 } });
    assert.equal(outcome.status, 'rejected');
    assert.match(
      outcome.status === 'rejected' ? outcome.reason : '',
      /details\.allocMb: expected a size ≥ 0 MiB/,
    );
    assert.equal(delivery.stats().pending, 0);
    const text = await readFile(deadLetterPath(join(dir, 'spool'), Date.now()), 'utf8');
    assert.match(text, /"bad-1"/);
  });
});

test('a spooled symptom the workflow rejects is dead-lettered and the ones behind it are delivered', async () => {
  assert.ok(server);
  const spoolDir = join(dir, 'spool-rejects');
  // What an older observer, or a clock that was wrong when it spooled, may have left behind: the workflow's
  // validator refuses an event time far in the future.
  const spool = await Spool.open<{ host: string; symptom: IdentifiedSymptom; spooledAt: number }>({
    dir: spoolDir,
    maxBytes: 1 << 20,
    log: { warn: () => undefined, error: () => undefined },
  });
  const future = new Date(Date.now() + 3600_000).toISOString();
  await spool.append({ host, symptom: oom('r-1', { eventTime: future }), spooledAt: Date.now() });
  await spool.append({ host, symptom: oom('r-2'), spooledAt: Date.now() });
  await spool.close();

  const log = recordingLog();
  // What the observer's metrics count (kloros_observer_delivery_errors_total, …_symptoms_delivered_total).
  const events: string[] = [];
  const delivery = await createSymptomDelivery({
    host,
    target: loadTemporalTarget({ TEMPORAL_ADDRESS: server.address }),
    spoolDir,
    log,
    attemptTimeoutMs: 5_000,
    backoff: { initialMs: 200, maxMs: 1_000 },
    events: {
      delivered: () => void events.push('delivered'),
      spooled: () => void events.push('spooled'),
      failed: (reason) => void events.push(`failed:${reason}`),
    },
  });
  try {
    assert.ok(await delivery.whenDrained(60_000));
    const stats = delivery.stats();
    assert.equal(stats.rejected, 1);
    assert.equal(stats.delivered, 1);
    assert.deepEqual(events, ['failed:rejected', 'delivered'], 'a rejection by the validator, then r-2');
    const files = await readdir(join(spoolDir, 'rejected'));
    const text = await readFile(join(spoolDir, 'rejected', files[0] ?? ''), 'utf8');
    assert.match(text, /"reason":"eventTime: .* in the future; check the sender's clock"/);
    assert.match(text, /"id":"r-1"/);
    assert.doesNotMatch(text, /"r-2"/);
    const state = await queryState(server.address, host);
    assert.equal(state.totals.counted, 8, 'r-2 counted behind the rejected one');
  } finally {
    await delivery.close();
  }
});
