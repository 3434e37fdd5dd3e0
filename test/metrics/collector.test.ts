// The collector between Temporal and /metrics: it keeps its counter ledger on disk (a new collector —
// a restarted worker — continues from it), serves the last values while the state cannot be read, and
// never trusts a damaged ledger file. The reader here is a stand-in for the one thing a test cannot
// make a real Temporal do on cue: fail, then answer again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/config/logger.js';
import { DEFAULT_POLICY } from '../../src/domain/policy.js';
import { emptyHealingCounters } from '../../src/domain/workflow-counters.js';
import { MetricsCollector } from '../../src/metrics/collector.js';
import { METRICS } from '../../src/metrics/catalog.js';
import type { HostStateReading } from '../../src/metrics/workflow-state.js';
import type { HealingStateView } from '../../src/workflows/healing-messages.js';

const logger = createLogger('collector-test', 'silent');

function view(counted: number, armed: boolean, firstRunId = 'run-1'): HealingStateView {
  return {
    workflowId: 'kloros-healing/gpu-1/vllm_oom',
    kind: 'vllm_oom',
    armed,
    totals: { counted, duplicates: 0, stale: 0, rejected: 0 },
    counters: emptyHealingCounters(),
    firstRunId,
  } as HealingStateView;
}

function scripted(readings: (HostStateReading | Error)[]) {
  return {
    async read(): Promise<HostStateReading> {
      const next = readings.length > 1 ? readings.shift()! : readings[0]!;
      if (next instanceof Error) throw next;
      return next;
    },
  };
}

const symptoms = (s: { counters: { name: string; value: number }[] }) =>
  s.counters.find((c) => c.name === METRICS.symptoms.name)?.value;
const flag = (s: { gauges: { name: string; value: number }[] }) =>
  s.gauges.find((g) => g.name === METRICS.escalationFlag.name)?.value;

test('counters continue from the stored ledger in a new collector; the last values stand while reading fails', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'klr-collector-'));
  const ledgerPath = join(dir, 'metrics', 'counters.json');
  try {
    const a = new MetricsCollector({
      reader: scripted([{ healing: [view(4, true)], unanswered: [], host: null }]),
      policy: DEFAULT_POLICY,
      ledgerPath,
      logger,
      intervalMs: 3600_000,
    });
    await a.start();
    const first = await a.refresh();
    assert.equal(symptoms(first), 4);
    assert.equal(flag(first), 1);
    a.stop();

    // A restarted worker finds the workflow started afresh (terminated meanwhile) with 1 symptom,
    // once Temporal answers again.
    let reachable = false;
    const b = new MetricsCollector({
      reader: {
        async read() {
          if (!reachable) throw new Error('unreachable');
          return { healing: [view(1, false, 'run-2')], unanswered: [], host: null };
        },
      },
      policy: DEFAULT_POLICY,
      ledgerPath,
      logger,
      intervalMs: 3600_000,
    });
    await b.start();
    const failing = await b.refresh();
    assert.equal(symptoms(failing), 4, 'the stored counts, while Temporal cannot be read');
    assert.equal(flag(failing), 0, 'no view read yet: the flag is not invented');
    reachable = true;
    const fresh = await b.refresh();
    assert.equal(symptoms(fresh), 5, 'the new chain adds to the old');
    assert.equal(flag(fresh), 0);
    b.stop();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a workflow that does not answer keeps its last view for the gauges', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'klr-collector-'));
  try {
    const c = new MetricsCollector({
      reader: scripted([
        { healing: [view(3, true)], unanswered: [], host: null },
        { healing: [], unanswered: ['kloros-healing/gpu-1/vllm_oom'], host: null },
        { healing: [], unanswered: [], host: null },
      ]),
      policy: DEFAULT_POLICY,
      ledgerPath: join(dir, 'counters.json'),
      logger,
    });
    assert.equal(flag(await c.refresh()), 1);
    assert.equal(flag(await c.refresh()), 1, 'running but silent: the last view stands');
    const gone = await c.refresh();
    assert.equal(flag(gone), 0, 'no longer running');
    assert.equal(symptoms(gone), 3, 'its counts stay');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a damaged ledger is set aside (renamed), never trusted', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'klr-collector-'));
  const ledgerPath = join(dir, 'counters.json');
  try {
    await writeFile(ledgerPath, '{"version":1,"sources":{"x":{"epoch":1}}}');
    const c = new MetricsCollector({
      reader: scripted([{ healing: [view(2, false)], unanswered: [], host: null }]),
      policy: DEFAULT_POLICY,
      ledgerPath,
      logger,
    });
    await c.start();
    assert.equal(symptoms(await c.refresh()), 2);
    c.stop();
    const files = await readdir(dir);
    assert.ok(
      files.some((f) => f.startsWith('counters.json.unreadable-')),
      files.join(', '),
    );
    assert.ok(files.includes('counters.json'), 'a new ledger was written');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
