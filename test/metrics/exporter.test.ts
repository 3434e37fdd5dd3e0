// The /metrics endpoint on loopback: the catalog's TYPE lines, counters and the carried histogram in the
// text format Prometheus reads, and clear failures for a wrong path or a taken port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { BUILD_INFO, buildInfo } from '../../src/metrics/build-info.js';
import { METRICS } from '../../src/metrics/catalog.js';
import type { MetricsSnapshot } from '../../src/metrics/collector.js';
import { gaugeSamples, histogramSamples, zeroCounterSamples } from '../../src/metrics/derive.js';
import { createMetricsRegistry, serveMetrics } from '../../src/metrics/exporter.js';
import { DEFAULT_POLICY } from '../../src/domain/policy.js';
import { parseExposition, valueOf } from '../support/metrics-text.js';

function snapshot(): MetricsSnapshot {
  const counters = [
    ...zeroCounterSamples({
      services: ['vllm', 'llama-70b'],
      serviceKinds: [
        { service: 'vllm', kind: 'vllm_oom' },
        { service: 'llama-70b', kind: 'vllm_oom' },
      ],
    }).filter((s) => !s.name.startsWith(METRICS.canaryDowntime.name)),
    ...histogramSamples({ counts: [0, 1, 0, 2], sumMs: 21_500, count: 3 }, { service: 'vllm' }),
  ].map((s) => (s.name === METRICS.symptoms.name && s.labels.service === 'vllm' ? { ...s, value: 5 } : s));
  const gauges = gaugeSamples({
    healing: [],
    known: [
      { service: 'vllm', kind: 'vllm_oom' },
      { service: 'llama-70b', kind: 'vllm_oom' },
    ],
    host: null,
    policy: DEFAULT_POLICY,
    now: 0,
    lastContact: 0,
  });
  return { counters, gauges };
}

test('the exposition carries every catalog metric with its type, and the state’s values', async () => {
  const server = await serveMetrics(createMetricsRegistry({ current: async () => snapshot() }), {
    host: '127.0.0.1',
    port: 0,
  });
  try {
    const url = `http://127.0.0.1:${server.address.port}/metrics`;
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const e = parseExposition(await res.text());
    for (const spec of Object.values(METRICS)) assert.equal(e.types.get(spec.name), spec.type, spec.name);
    assert.match(e.text, /^# TYPE kloros_symptoms_total counter$/m);
    assert.equal(valueOf(e, METRICS.symptoms.name, { service: 'vllm', kind: 'vllm_oom' }), 5);
    assert.equal(valueOf(e, METRICS.symptoms.name, { service: 'llama-70b', kind: 'vllm_oom' }), 0);
    const h = METRICS.canaryDowntime.name;
    const service = 'vllm';
    assert.equal(valueOf(e, `${h}_bucket`, { service, le: '1' }), 0);
    assert.equal(valueOf(e, `${h}_bucket`, { service, le: '2.5' }), 1);
    assert.equal(valueOf(e, `${h}_bucket`, { service, le: '10' }), 3);
    assert.equal(valueOf(e, `${h}_bucket`, { service, le: '+Inf' }), 3);
    assert.equal(valueOf(e, `${h}_sum`, { service }), 21.5);
    assert.equal(valueOf(e, `${h}_count`, { service }), 3);
    assert.equal(valueOf(e, METRICS.escalationFlag.name, { service: 'llama-70b', kind: 'vllm_oom' }), 0);
    // The coordinator's refusals are per host: service="" (which Prometheus reads as no label).
    assert.equal(valueOf(e, METRICS.decisionsRefused.name, { service: '', reason: 'busy' }), 0);
    assert.equal(valueOf(e, METRICS.decisionsRefused.name, { service: 'vllm', reason: 'window_closing' }), 0);
    assert.equal(valueOf(e, METRICS.budgetRemaining.name), DEFAULT_POLICY.maxDowntimeSeconds);
    assert.equal(e.types.get('process_resident_memory_bytes'), 'gauge');
    assert.equal(valueOf(e, BUILD_INFO.name, { ...buildInfo() }), 1, 'kloros_build_info names this release');

    const other = await fetch(`http://127.0.0.1:${server.address.port}/`);
    assert.equal(other.status, 404);
    assert.match(await other.text(), /GET \/metrics/);
  } finally {
    await server.close();
  }
});

test('a port in use is refused with the variable, the address and what to do', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    await assert.rejects(
      serveMetrics(createMetricsRegistry({ current: async () => snapshot() }), { host: '127.0.0.1', port }),
      new RegExp(
        `^Error: KLR_METRICS_ADDR: cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\); another process`,
      ),
    );
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
});

test('a failing state read answers 500 with the reason, not a half exposition', async () => {
  const server = await serveMetrics(
    createMetricsRegistry({
      current: async () => {
        throw new Error('Temporal unreachable');
      },
    }),
    { host: '127.0.0.1', port: 0 },
  );
  try {
    const res = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
    assert.equal(res.status, 500);
    assert.match(await res.text(), /Temporal unreachable/);
  } finally {
    await server.close();
  }
});
