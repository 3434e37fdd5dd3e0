// The observer's metrics without a process: the registry exposes exactly the catalog (types, labels, the
// series that start at 0), each event moves its own series, the spool gauges are read at the scrape; failed
// attempts get a reason code from where they failed and the gRPC status, never from the text; the pipeline
// and the delivery report their events where they happen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ServiceError } from '@temporalio/client';
import { BUILD_INFO, buildInfo } from '../../src/metrics/build-info.js';
import {
  DELIVERY_ERROR_REASONS,
  type DeliveryErrorReason,
  HTTP_DOOR_CODES,
  OBSERVER_METRICS,
} from '../../src/observer/observer-metrics.js';
import { createObserverMetrics } from '../../src/observer/observer-metrics-registry.js';
import {
  type DeliveryEvents,
  SpoolFullError,
  createSymptomDelivery,
  transientReason,
} from '../../src/observer/delivery.js';
import { observe } from '../../src/observer/pipeline.js';
import type { LineSource, SourceLine } from '../../src/observer/sources/line-source.js';
import { parseExposition, valueOf } from '../support/metrics-text.js';

const scrape = async (m: ReturnType<typeof createObserverMetrics>) =>
  parseExposition(await m.registry.metrics());

test('the exposition: every catalog metric with its type, kloros_build_info = 1, process metrics', async () => {
  const e = await scrape(createObserverMetrics({ source: 'file', door: true }));
  for (const spec of Object.values(OBSERVER_METRICS))
    assert.equal(e.types.get(spec.name), spec.type, spec.name);
  assert.equal(e.types.get(BUILD_INFO.name), 'gauge');
  const info = e.samples.filter((s) => s.name === BUILD_INFO.name);
  assert.equal(info.length, 1);
  assert.deepEqual(info[0]!.labels, { ...buildInfo() });
  assert.equal(info[0]!.value, 1);
  assert.match(info[0]!.labels.version ?? '', /^\d+\.\d+\.\d+/);
  assert.equal(info[0]!.labels.node_version, process.version);
  assert.match(info[0]!.labels.temporal_sdk ?? '', /^\d+\.\d+\.\d+/);
  assert.ok(e.types.has('process_cpu_seconds_total') && e.types.has('nodejs_heap_size_total_bytes'));
  // Every name of ours carries the prefix, and counters end in _total.
  for (const spec of Object.values(OBSERVER_METRICS)) {
    assert.match(spec.name, /^kloros_observer_[a-z_]+$/);
    assert.equal(spec.name.endsWith('_total'), spec.type === 'counter', spec.name);
  }
});

test('series that start at 0: the followed source, every delivery error reason, every door answer', async () => {
  const e = await scrape(createObserverMetrics({ source: 'command', door: true }));
  // The one-service settings without a configured service: service "" (no label, to Prometheus).
  assert.equal(valueOf(e, OBSERVER_METRICS.linesRead.name, { source: 'command', service: '' }), 0);
  assert.equal(valueOf(e, OBSERVER_METRICS.linesRead.name, { source: 'file', service: '' }), undefined);
  for (const reason of DELIVERY_ERROR_REASONS)
    assert.equal(valueOf(e, OBSERVER_METRICS.deliveryErrors.name, { reason }), 0, reason);
  for (const code of HTTP_DOOR_CODES)
    assert.equal(valueOf(e, OBSERVER_METRICS.doorRequests.name, { code: String(code) }), 0, String(code));
  // Without the door, no door series but its connection counter's.
  const plain = await scrape(createObserverMetrics({ source: 'file' }));
  assert.equal(plain.samples.filter((s) => s.name === OBSERVER_METRICS.doorRequests.name).length, 0);
  // Incidents have none until the first: their kinds depend on the log.
  assert.equal(plain.samples.filter((s) => s.name === OBSERVER_METRICS.incidents.name).length, 0);
});

test('each event moves its own series, and only that one', async () => {
  const m = createObserverMetrics({ source: 'file', door: true });
  m.lineRead('file', false);
  m.lineRead('file', true);
  m.lineRead('file', false);
  m.incidentDetected('vllm_oom', 'torch_oom');
  m.incidentDetected('vllm_oom', 'torch_oom');
  m.incidentDetected('gpu_xid', 'gpu_xid');
  m.delivered();
  m.spooled();
  m.spooled();
  m.failed('connect');
  m.failed('connect');
  m.failed('spool_full');
  m.answered(202);
  m.answered(429);
  m.answered(429);
  m.connectionDropped();
  const e = await scrape(m);
  const v = (name: string, labels: Record<string, string> = {}) => valueOf(e, name, labels);
  const M = OBSERVER_METRICS;
  assert.equal(v(M.linesRead.name, { source: 'file', service: '' }), 3);
  assert.equal(v(M.linesTruncated.name, { source: 'file', service: '' }), 1);
  assert.equal(v(M.incidents.name, { kind: 'vllm_oom', family: 'torch_oom', service: '' }), 2);
  assert.equal(v(M.incidents.name, { kind: 'gpu_xid', family: 'gpu_xid', service: '' }), 1);
  assert.equal(v(M.delivered.name), 1);
  assert.equal(v(M.spooled.name), 2);
  assert.equal(v(M.deliveryErrors.name, { reason: 'connect' }), 2);
  assert.equal(v(M.deliveryErrors.name, { reason: 'spool_full' }), 1);
  assert.equal(v(M.deliveryErrors.name, { reason: 'deadline' }), 0);
  assert.equal(v(M.doorRequests.name, { code: '202' }), 1);
  assert.equal(v(M.doorRequests.name, { code: '429' }), 2);
  assert.equal(v(M.doorRequests.name, { code: '401' }), 0);
  assert.equal(v(M.doorConnectionsDropped.name), 1);
});

test('several services: each followed log has its series from 0, each line and incident its service', async () => {
  const m = createObserverMetrics({
    sources: [
      { source: 'file', service: 'llama-70b' },
      { source: 'command', service: 'qwen-32b' },
    ],
  });
  const M = OBSERVER_METRICS;
  let e = await scrape(m);
  assert.equal(valueOf(e, M.linesRead.name, { source: 'file', service: 'llama-70b' }), 0);
  assert.equal(valueOf(e, M.linesRead.name, { source: 'command', service: 'qwen-32b' }), 0);
  assert.equal(valueOf(e, M.linesTruncated.name, { source: 'command', service: 'qwen-32b' }), 0);
  assert.equal(e.samples.filter((s) => s.name === M.linesRead.name).length, 2);
  m.lineRead('file', false, 'llama-70b');
  m.lineRead('command', true, 'qwen-32b');
  m.lineRead('command', false, 'qwen-32b');
  m.incidentDetected('vllm_oom', 'torch_oom', 'qwen-32b');
  e = await scrape(m);
  assert.equal(valueOf(e, M.linesRead.name, { source: 'file', service: 'llama-70b' }), 1);
  assert.equal(valueOf(e, M.linesRead.name, { source: 'command', service: 'qwen-32b' }), 2);
  assert.equal(valueOf(e, M.linesTruncated.name, { source: 'command', service: 'qwen-32b' }), 1);
  assert.equal(valueOf(e, M.linesTruncated.name, { source: 'file', service: 'llama-70b' }), 0);
  assert.equal(
    valueOf(e, M.incidents.name, { kind: 'vllm_oom', family: 'torch_oom', service: 'qwen-32b' }),
    1,
  );
  assert.equal(e.samples.filter((s) => s.name === M.incidents.name).length, 1);
});

test('the spool gauges are read from the delivery at each scrape', async () => {
  const m = createObserverMetrics();
  const figures = { pending: 0, pendingBytes: 0, maxBytes: 256 * 1024 * 1024 };
  m.readSpool(() => figures);
  const M = OBSERVER_METRICS;
  let e = await scrape(m);
  assert.equal(valueOf(e, M.spoolPending.name), 0);
  assert.equal(valueOf(e, M.spoolMaxBytes.name), 256 * 1024 * 1024);
  figures.pending = 3;
  figures.pendingBytes = 2112;
  e = await scrape(m);
  assert.equal(valueOf(e, M.spoolPending.name), 3);
  assert.equal(valueOf(e, M.spoolPendingBytes.name), 2112);
});

/** A gRPC error as @temporalio/client sees one (code, details, metadata), wrapped as the SDK wraps it. */
function grpc(code: number): Error {
  const cause = Object.assign(new Error(`${code} SOMETHING: text that must not matter`), {
    code,
    details: 'text that must not matter',
    metadata: {},
  });
  return new ServiceError('call failed', { cause });
}

test('a failed attempt gets its reason from where it failed and the gRPC status code, never from the text', () => {
  assert.equal(transientReason('connect', new Error('DEADLINE unavailable permission')), 'connect');
  assert.equal(transientReason('connect', grpc(14)), 'connect', 'no connection at all, whatever the code');
  assert.equal(transientReason('call', grpc(4)), 'deadline');
  assert.equal(transientReason('call', grpc(14)), 'unavailable');
  assert.equal(transientReason('call', grpc(7)), 'auth');
  assert.equal(transientReason('call', grpc(16)), 'auth');
  assert.equal(transientReason('call', grpc(8)), 'other', 'RESOURCE_EXHAUSTED');
  assert.equal(transientReason('call', new Error('14 UNAVAILABLE: deadline exceeded')), 'other');
  // A status a few causes down is found.
  assert.equal(
    transientReason('call', new Error('outer', { cause: new Error('mid', { cause: grpc(4) }) })),
    'deadline',
  );
});

/** Events, recorded by name. */
function recorder(): DeliveryEvents & { got: string[] } {
  const got: string[] = [];
  return {
    got,
    delivered: () => void got.push('delivered'),
    spooled: () => void got.push('spooled'),
    failed: (reason: DeliveryErrorReason) => void got.push(`failed:${reason}`),
  };
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const oom = (id: string) => ({ kind: 'vllm_oom', id, details: { allocMb: 512 } });

test('the delivery reports each event: no connection → connect error and spooled; an invalid symptom; a full spool', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'klr-obs-metrics-'));
  const events = recorder();
  const delivery = await createSymptomDelivery({
    host: 'gpu-1',
    connect: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:7233')),
    spoolDir: join(dir, 'spool'),
    spoolMaxBytes: 600,
    log: quiet,
    events,
    // The drainer waits long enough not to try again during the test.
    backoff: { initialMs: 60_000, maxMs: 60_000 },
  });
  try {
    assert.equal((await delivery.submit(oom('m-1'))).status, 'spooled');
    assert.deepEqual(events.got.slice(0, 2), ['failed:connect', 'spooled']);
    // The drainer tries the spooled one at once, fails the same way, then waits its backoff.
    for (let i = 0; i < 200 && events.got.length < 3; i++) await delay(10);
    assert.deepEqual(events.got, ['failed:connect', 'spooled', 'failed:connect']);
    events.got.length = 0;
    assert.equal((await delivery.submit({ ...oom('m-2'), details: { allocMb: -1 } })).status, 'rejected');
    assert.deepEqual(events.got, ['failed:invalid']);
    events.got.length = 0;
    // Unreachable: queued behind the spool without an attempt, until it is full.
    const outcomes: string[] = [];
    for (let i = 3; i < 20; i++) {
      try {
        outcomes.push((await delivery.submit(oom(`m-${i}`))).status);
      } catch (err) {
        assert.ok(err instanceof SpoolFullError);
        outcomes.push('full');
        break;
      }
    }
    assert.equal(outcomes.at(-1), 'full', outcomes.join(' '));
    assert.deepEqual(events.got, [...outcomes.slice(0, -1), 'failed:spool_full']);
  } finally {
    await delivery.close();
    await rm(dir, { recursive: true, force: true });
  }
});

/** A source of fixed lines (no position kept). */
function lines(texts: { text: string; truncated?: boolean }[]): LineSource {
  return {
    description: 'test lines',
    stablePositions: false,
    async *lines() {
      let n = 0;
      for (const t of texts) {
        n += 1;
        const line: SourceLine = {
          ...t,
          line: n,
          position: n,
          sourceKey: 'k',
          bytes: t.text.length + 1,
          cursor: null,
        };
        yield line;
      }
    },
    async commit() {},
  };
}

test('the pipeline reports every line as it is read and every incident before the sink gets it', async () => {
  const seen: string[] = [];
  const oomLine =
    'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 3.50 MiB is free.';
  await observe({
    source: lines([{ text: 'INFO starting' }, { text: oomLine }, { text: 'x'.repeat(10), truncated: true }]),
    host: 'gpu-1',
    sink: {
      deliver: async (s) => void seen.push(`deliver ${s.kind}`),
      close: async () => {},
    },
    onLine: (l) => seen.push(`line ${l.line}${l.truncated ? ' truncated' : ''}`),
    onDetected: (i) => seen.push(`detected ${i.kind}/${i.family}`),
    onIncident: (i) => seen.push(`accepted ${i.family}`),
  });
  assert.deepEqual(seen, [
    'line 1',
    'line 2',
    'detected vllm_oom/torch_oom',
    'deliver vllm_oom',
    'accepted torch_oom',
    'line 3 truncated',
  ]);
});
