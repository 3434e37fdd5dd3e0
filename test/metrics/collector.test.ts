// The collector between the workflows' reports and /metrics: counters from the reported totals through a
// ledger kept on disk (a restarted worker continues from it), gauges from the last reports, one reading
// of the running workflows at start (retried until it succeeds, never repeated), and a reachability check
// only when a scrape finds no contact for a while. The reader here is a stand-in for the one thing a test
// cannot make a real Temporal do on cue: fail, then answer again; test/metrics/worker-metrics.test.ts runs
// the real path on a Temporal server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/config/logger.js';
import { DEFAULT_POLICY } from '../../src/domain/policy.js';
import { emptyHealingCounters } from '../../src/domain/workflow-counters.js';
import { type CollectorOptions, MetricsCollector } from '../../src/metrics/collector.js';
import { METRICS } from '../../src/metrics/catalog.js';
import { parseCounterLedger } from '../../src/metrics/counter-ledger.js';
import type { HostStateReading } from '../../src/metrics/workflow-state.js';
import type { HealingStateView } from '../../src/workflows/healing-messages.js';
import type { HealingMetricsReport } from '../../src/workflows/metrics-sink.js';

const logger = createLogger('collector-test', 'silent');
const ID = 'kloros-healing/gpu-1/vllm_oom';

function report(counted: number, armed: boolean, firstRunId = 'run-1', id = ID): HealingMetricsReport {
  return {
    workflowId: id,
    kind: 'vllm_oom',
    armed,
    totals: { counted, duplicates: 0, stale: 0, rejected: 0 },
    counters: emptyHealingCounters(),
    lastCanary: null,
    firstRunId,
  };
}
const view = (counted: number, armed: boolean, firstRunId = 'run-1', id = ID) =>
  report(counted, armed, firstRunId, id) as HealingStateView;

type Snap = { counters: { name: string; value: number }[]; gauges: { name: string; value: number }[] };
const symptoms = (s: Snap) =>
  s.counters.filter((c) => c.name === METRICS.symptoms.name).reduce((n, c) => n + c.value, 0);
const flag = (s: Snap) => s.gauges.find((g) => g.name === METRICS.escalationFlag.name)?.value;
const lastRead = (s: Snap) => s.gauges.find((g) => g.name === METRICS.lastStateRead.name)?.value;

/** A reader that answers from a script (the last entry repeats) and counts its calls. */
function scripted(readings: (HostStateReading | Error)[]) {
  const reader = {
    calls: 0,
    async read(): Promise<HostStateReading> {
      reader.calls++;
      const next = readings.length > 1 ? readings.shift()! : readings[0]!;
      if (next instanceof Error) throw next;
      return next;
    },
  };
  return reader;
}

const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(ok(), what);
};

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'klr-collector-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function collector(dir: string, over: Partial<CollectorOptions> = {}): MetricsCollector {
  return new MetricsCollector({
    reader: scripted([{ healing: [], unanswered: [], host: null }]),
    checkContact: async () => {},
    stillRunning: async () => true,
    policy: DEFAULT_POLICY,
    ledgerPath: join(dir, 'metrics', 'counters.json'),
    logger,
    retryMs: 5,
    ...over,
  });
}

test('reports move the counters and gauges at once; a restarted collector continues from the stored ledger', async () => {
  await withDir(async (dir) => {
    const a = collector(dir);
    await a.load();
    a.start();
    a.onHealing(report(3, false));
    assert.equal(symptoms(a.snapshot()), 3);
    a.onHealing(report(4, true));
    assert.equal(symptoms(a.snapshot()), 4, 'totals, not increments: 4, not 7');
    assert.equal(flag(a.snapshot()), 1);
    a.onHealing(report(4, true));
    assert.equal(symptoms(a.snapshot()), 4, 'the same report again (a retried task) counts nothing');
    await a.stop();
    const stored = parseCounterLedger(await readFile(join(dir, 'metrics', 'counters.json'), 'utf8'));
    assert.equal(stored.sources[ID]?.series['kloros_symptoms_total{kind="vllm_oom",service=""}']?.last, 4);

    // A restarted worker cannot read Temporal yet: the stored counts stand, no flag is invented.
    let reachable = false;
    const b = collector(dir, {
      reader: {
        async read() {
          if (!reachable) throw new Error('unreachable');
          // Terminated meanwhile and started afresh: a new chain with 1 symptom.
          return { healing: [view(1, false, 'run-2')], unanswered: [], host: null };
        },
      },
    });
    await b.load();
    assert.equal(symptoms(b.snapshot()), 4);
    assert.equal(flag(b.snapshot()), 0);
    b.start();
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(symptoms(b.snapshot()), 4, 'still unreachable: the stored counts');
    reachable = true;
    await until('the reading at start is retried until it succeeds', () => symptoms(b.snapshot()) === 5);
    assert.equal(flag(b.snapshot()), 0);
    await b.stop();
  });
});

test('the reading at start happens once; a workflow that reported meanwhile keeps its newer report', async () => {
  await withDir(async (dir) => {
    let answer!: (r: HostStateReading) => void;
    const reader = {
      calls: 0,
      read: () => {
        reader.calls++;
        return new Promise<HostStateReading>((resolve) => (answer = resolve));
      },
    };
    const c = collector(dir, { reader });
    await c.load();
    c.start();
    c.onHealing(report(6, true));
    // The reading's answer was taken before that report: it says 5 and not armed.
    answer({
      healing: [view(5, false), view(2, false, 'run-9', 'kloros-healing/gpu-1/vllm_kv_cache')],
      unanswered: [],
      host: null,
    });
    await until('the reading was applied', () => symptoms(c.snapshot()) === 8);
    assert.equal(flag(c.snapshot()), 1, 'the newer report stands');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(reader.calls, 1, 'read once, never on a timer');
    await c.stop();
  });
});

test('a running workflow that does not answer at start is asked again until it answers or reports', async () => {
  await withDir(async (dir) => {
    const reader = scripted([
      { healing: [], unanswered: [ID], host: null },
      { healing: [], unanswered: [ID], host: null },
      { healing: [view(2, true)], unanswered: [], host: null },
    ]);
    const c = collector(dir, { reader });
    await c.load();
    c.start();
    await until('answered on the third reading', () => flag(c.snapshot()) === 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(reader.calls, 3);
    await c.stop();
  });
});

test('a workflow that ended loses its gauges and keeps its counts', async () => {
  await withDir(async (dir) => {
    const c = collector(dir);
    await c.load();
    c.onHealing(report(3, true));
    assert.equal(flag(c.snapshot()), 1);
    c.onHealing({ ...report(3, false), ended: true });
    assert.equal(flag(c.snapshot()), 0, 'the kind stays known, its flag 0');
    assert.equal(symptoms(c.snapshot()), 3);
    await c.stop();
  });
});

test('a scrape checks contact with Temporal only after a quiet spell; a failed check leaves the old time', async () => {
  await withDir(async (dir) => {
    let now = 1_000_000;
    let checks = 0;
    let reachable = true;
    const c = collector(dir, {
      now: () => now,
      contactCheckMs: 60_000,
      checkContact: async () => {
        checks++;
        if (!reachable) throw new Error('UNAVAILABLE');
      },
    });
    await c.load();
    assert.equal(lastRead(await c.current()), 1_000, 'the worker connected at start');
    now += 30_000;
    c.onHealing(report(1, false));
    assert.equal(lastRead(await c.current()), 1_030, 'a report is contact');
    now += 59_000;
    await c.current();
    assert.equal(checks, 0, 'no call while contact is recent');
    now += 1_000;
    assert.equal(lastRead(await c.current()), 1_090, 'checked after 60 s without contact');
    assert.equal(checks, 1);
    reachable = false;
    now += 120_000;
    assert.equal(lastRead(await c.current()), 1_090, 'unreachable: the time of the last contact stays');
    assert.equal(checks, 2);
    await c.stop();
  });
});

test('a damaged ledger is set aside (renamed), never trusted', async () => {
  await withDir(async (dir) => {
    const ledgerPath = join(dir, 'counters.json');
    await writeFile(ledgerPath, '{"version":1,"sources":{"x":{"epoch":1}}}');
    const c = collector(dir, {
      ledgerPath,
      reader: scripted([{ healing: [view(2, false)], unanswered: [], host: null }]),
    });
    await c.load();
    c.start();
    await until('read at start', () => symptoms(c.snapshot()) === 2);
    await c.stop();
    const files = await readdir(dir);
    assert.ok(
      files.some((f) => f.startsWith('counters.json.unreadable-')),
      files.join(', '),
    );
    assert.ok(files.includes('counters.json'), 'a new ledger was written');
  });
});

test('a burst of reports writes the ledger a few times, and the last totals always', async () => {
  await withDir(async (dir) => {
    const c = collector(dir);
    await c.load();
    for (let i = 1; i <= 500; i++) c.onHealing(report(i, i > 100));
    await c.stop();
    const stored = parseCounterLedger(await readFile(join(dir, 'metrics', 'counters.json'), 'utf8'));
    assert.equal(stored.sources[ID]?.series['kloros_symptoms_total{kind="vllm_oom",service=""}']?.last, 500);
  });
});

test('an armed flag not reported for a while is rechecked on a scrape, and dropped once its workflow is gone', async () => {
  await withDir(async (dir) => {
    let now = 1_000_000;
    const asked: string[] = [];
    let running = true;
    const c = collector(dir, {
      now: () => now,
      recheckMs: 600_000,
      stillRunning: async (id) => {
        asked.push(id);
        return running;
      },
    });
    await c.load();
    c.onHealing(report(5, true));
    c.onHealing(report(1, false, 'run-1', 'kloros-healing/gpu-1/vllm_kv_cache'));
    now += 599_000;
    await c.current();
    assert.deepEqual(asked, [], 'reported recently: no call');
    now += 1_000;
    assert.equal(flag(await c.current()), 1);
    assert.deepEqual(asked, [ID], 'only the alerting figure is checked, once');
    await c.current();
    assert.equal(asked.length, 1, 'not again within the period');
    running = false; // terminated from outside: it cannot report
    now += 600_000;
    const after = await c.current();
    assert.equal(asked.length, 2);
    assert.equal(flag(after), 0, 'its flag is dropped');
    assert.equal(symptoms(after), 6, 'its counts stay');
    await c.stop();
  });
});

test('a report that comes in while a recheck is asked wins over its answer', async () => {
  await withDir(async (dir) => {
    let now = 1_000_000;
    let answer!: (running: boolean) => void;
    const c = collector(dir, {
      now: () => now,
      recheckMs: 60_000,
      stillRunning: () => new Promise<boolean>((resolve) => (answer = resolve)),
    });
    await c.load();
    c.onHealing(report(5, true));
    now += 60_000;
    const scrape = c.current();
    await until('the recheck was asked', () => answer !== undefined);
    c.onHealing(report(1, true, 'run-2')); // terminated and started again meanwhile: a new run reports
    answer(false); // the describe was answered for the old run
    assert.equal(flag(await scrape), 1, "the new run's flag stands");
    await c.stop();
  });
});

test('after an upgrade from 0.4: the old ledger keeps counting under the legacy service, nothing twice', async () => {
  await withDir(async (dir) => {
    // What 0.4 stored: the legacy workflow's 4 symptoms and one refusal, the coordinator's lease waits.
    const v1 = {
      version: 1,
      sources: {
        [ID]: {
          epoch: 'run-1',
          series: {
            'kloros_symptoms_total{kind="vllm_oom"}': {
              name: 'kloros_symptoms_total',
              labels: { kind: 'vllm_oom' },
              base: 1,
              last: 4,
            },
            'kloros_decisions_refused_total{reason="window_closing"}': {
              name: 'kloros_decisions_refused_total',
              labels: { reason: 'window_closing' },
              base: 0,
              last: 1,
            },
          },
        },
        'kloros-host/gpu-1': {
          epoch: 'host-1',
          series: {
            'kloros_decisions_refused_total{reason="busy"}': {
              name: 'kloros_decisions_refused_total',
              labels: { reason: 'busy' },
              base: 0,
              last: 2,
            },
            'kloros_canary_lease_waits_total{reason="busy"}': {
              name: 'kloros_canary_lease_waits_total',
              labels: { reason: 'busy' },
              base: 0,
              last: 2,
            },
          },
        },
      },
    };
    await mkdir(join(dir, 'metrics'), { recursive: true });
    await writeFile(join(dir, 'metrics', 'counters.json'), JSON.stringify(v1));
    const c = collector(dir, { legacyServiceName: 'vllm', serviceNames: ['vllm', 'llama-70b'] });
    await c.load();
    const count = (name: string, labels: Record<string, string>) =>
      c
        .snapshot()
        .counters.find((x) => x.name === name && JSON.stringify(x.labels) === JSON.stringify(labels))?.value;
    assert.equal(
      count(METRICS.symptoms.name, { service: 'vllm', kind: 'vllm_oom' }),
      5,
      '1 + 4, as 0.4 served',
    );
    assert.equal(count(METRICS.decisionsRefused.name, { service: 'vllm', reason: 'window_closing' }), 1);
    assert.equal(count(METRICS.decisionsRefused.name, { service: '', reason: 'busy' }), 2);
    assert.equal(count(METRICS.leaseWaits.name, { reason: 'busy' }), 2);
    // The other service has its zero series from the start.
    assert.equal(count(METRICS.restoreFail.name, { service: 'llama-70b' }), 0);
    // The legacy workflow reports the same totals, first without its name (null), then with it.
    c.onHealing({ ...report(4, false), service: null });
    assert.equal(symptoms(c.snapshot()), 5, 'the same totals: not counted again');
    c.onHealing({ ...report(6, true), service: 'vllm' });
    assert.equal(count(METRICS.symptoms.name, { service: 'vllm', kind: 'vllm_oom' }), 7);
    assert.equal(symptoms(c.snapshot()), 7, 'one series for the legacy service: nothing twice');
    const armed = c.snapshot().gauges.filter((g) => g.name === METRICS.escalationFlag.name);
    assert.deepEqual(armed, [
      { name: METRICS.escalationFlag.name, labels: { service: 'vllm', kind: 'vllm_oom' }, value: 1 },
    ]);
    // A second service on the host: the same kind, its own series.
    c.onHealing({
      ...report(2, false, 'run-b', 'kloros-healing/gpu-1/llama-70b/vllm_oom'),
      service: 'llama-70b',
    });
    assert.equal(count(METRICS.symptoms.name, { service: 'llama-70b', kind: 'vllm_oom' }), 2);
    assert.equal(count(METRICS.symptoms.name, { service: 'vllm', kind: 'vllm_oom' }), 7);
    await c.stop();
    const stored = parseCounterLedger(await readFile(join(dir, 'metrics', 'counters.json'), 'utf8'));
    assert.equal(stored.version, 2, 'stored in the new format');
    assert.equal(stored.sources[ID]?.service, 'vllm');
  });
});

test('a legacy workflow labelled "" (a worker given no legacy name) that learns its name: nothing counted twice', async () => {
  await withDir(async (dir) => {
    const c = collector(dir);
    await c.load();
    c.onHealing({ ...report(3, false), service: null });
    c.onHealing({ ...report(5, false), service: 'vllm' });
    const by = (service: string) =>
      c
        .snapshot()
        .counters.find(
          (x) =>
            x.name === METRICS.symptoms.name && x.labels.service === service && x.labels.kind === 'vllm_oom',
        )?.value;
    assert.equal(by(''), 3, 'what was counted before the name stays where it was');
    assert.equal(by('vllm'), 2, 'the name counts what came after');
    assert.equal(symptoms(c.snapshot()), 5);
    await c.stop();
  });
});
