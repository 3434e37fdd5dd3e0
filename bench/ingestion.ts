// Symptom ingestion: how fast recordSymptom (update-with-start) answers, one symptom after another and
// under sustained concurrent load, into one workflow and spread over 100 workflows, beside the original
// design's file ledger (bench/baselines/file-ledger.ts) fed the same symptoms on the same machine.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordSymptom, signalSymptom } from '../src/temporal/symptoms.js';
import { healingWorkflowId } from '../src/domain/identifiers.js';
import { stateQuery } from '../src/workflows/healing-messages.js';
import { FileLedger } from './baselines/file-ledger.js';
import type { BenchOptions, BenchResult, Benchmark, Row } from './lib/report.js';
import { benchWorkerEnv, startBenchStack, startBenchWorker } from './lib/stack.js';
import { summarise, timedPool } from './lib/stats.js';

const HOST = 'bench-ingest';
const details = { family: 'torch_oom', allocMb: 2048, freeMb: 900, deficitMb: 1148 };

interface Phase {
  label: string;
  count: number;
  concurrency: number;
  kinds: number;
}

export const ingestion: Benchmark = {
  name: 'ingestion',
  title: 'Symptom ingestion: recordSymptom (update-with-start) vs the file ledger',
  async run({ flags, log }: BenchOptions): Promise<BenchResult> {
    const sequential = flags.sequential ?? 200;
    const sustained = flags.symptoms ?? 2000;
    // Temporal admits at most 10 updates in flight per workflow (history.maxInFlightUpdates): above that,
    // senders of one workflow are throttled with RESOURCE_EXHAUSTED and retried by the SDK with backoff.
    const concurrency = flags.concurrency ?? 8;
    const fsync = (flags.fsync ?? 1) !== 0;
    const phases: Phase[] = [
      { label: '1 workflow, one at a time', count: sequential, concurrency: 1, kinds: 1 },
      { label: `1 workflow, ${concurrency} in flight`, count: sustained, concurrency, kinds: 1 },
      { label: `100 workflows, ${concurrency} in flight`, count: sustained, concurrency, kinds: 100 },
    ];
    const stack = await startBenchStack(log);
    const ledgerDir = await mkdtemp(join(tmpdir(), 'klr-ledger-'));
    const ledger = new FileLedger({ dir: ledgerDir, fsync });
    const rows: Row[] = [];
    const notes: string[] = [];
    try {
      // Threshold out of reach: every symptom takes the same path (no escalation midway).
      const worker = await startBenchWorker(
        stack.server.address,
        [HOST],
        benchWorkerEnv(stack.dataDir, { KLR_SYMPTOM_THRESHOLD_24H: '1000000' }),
      );
      try {
        let phaseNo = 0;
        for (const phase of phases) {
          phaseNo++;
          const kindFor = (i: number) => kindOf(`p${phaseNo}`, phase.kinds === 1 ? 0 : i % phase.kinds);
          // Warm-up: start this phase's workflows (and ledgers) outside the figures; one symptom each.
          for (let k = 0; k < phase.kinds; k++) {
            await recordSymptom(stack.client, HOST, { kind: kindFor(k), id: `warm-${k}` });
            await ledger.record(HOST, { kind: kindFor(k), id: `warm-${k}` });
          }
          const ours = await timedPool(
            phase.count,
            phase.concurrency,
            (i) => recordSymptom(stack.client, HOST, { kind: kindFor(i), id: `p${phaseNo}-${i}`, details }),
            (n) => log(`  ${phase.label}: recordSymptom ${n}/${phase.count}`),
          );
          const base = await timedPool(phase.count, phase.concurrency, (i) =>
            ledger.record(HOST, { kind: kindFor(i), id: `p${phaseNo}-${i}`, details }),
          );
          rows.push(...compare(phase.label, ours, base, phase.count));
          // Every symptom counted once: the workflows' counts add up to the symptoms sent.
          let counted = 0;
          let ledgerCounted = 0;
          for (let k = 0; k < phase.kinds; k++) {
            const kind = kindOf(`p${phaseNo}`, k);
            const s = await stack.client.workflow.getHandle(healingWorkflowId(HOST, kind)).query(stateQuery);
            counted += s.count24h;
            ledgerCounted += await ledger.count24h(HOST, kind);
          }
          rows.push({
            metric: `${phase.label}: symptoms counted (sent ${phase.count} + ${phase.kinds} warm-up)`,
            unit: 'symptoms',
            value: counted,
            baseline: ledgerCounted,
          });
          log(`${phase.label}: done, ${counted}/${phase.count} counted`);
        }
        // Signal-with-start: fire and forget, so its latency is the server's acceptance, not the count.
        const kind = kindOf('signal', 0);
        await recordSymptom(stack.client, HOST, { kind, id: 'warm' });
        const signals = await timedPool(sustained, concurrency, (i) =>
          signalSymptom(stack.client, HOST, { kind, id: `s-${i}`, details }),
        );
        const base = await timedPool(sustained, concurrency, (i) =>
          ledger.record(HOST, { kind, id: `s-${i}`, details }),
        );
        rows.push(
          ...compare(`1 workflow, signal-with-start, ${concurrency} in flight`, signals, base, sustained),
        );
      } finally {
        await worker.stop();
      }
    } finally {
      await stack.stop();
      await rm(ledgerDir, { recursive: true, force: true });
    }
    notes.push(
      `Baseline: bench/baselines/file-ledger.ts — one JSON line per symptom appended to a per-day file ${fsync ? 'and fsynced' : 'without fsync'}, then the 24 h count read back from the day files (ids counted once), answered per symptom like recordSymptom's count24h; appends to one (host, kind) are serialised as in the original single observer.`,
      'kloros-healing: the dev server on a SQLite file, the worker (production workflows and coordination activities, constant-time stand-ins for the GPU activities) as its own process, the client in the bench process; latency is the whole round trip of executeUpdateWithStart until the workflow answers with the count.',
      'The signal rows measure until the server accepted the signal (signal-with-start does not wait for the workflow).',
      "Concurrency stays below Temporal's limit of 10 updates in flight per workflow (history.maxInFlightUpdates, dynamic config): with 32 in flight into one workflow a trial run saw p99 ≈ 39 s, the excess updates being refused with RESOURCE_EXHAUSTED and retried by the SDK with backoff. One observer sends its symptoms in order, one at a time, so it never meets this limit.",
      'Escalation threshold set out of reach (KLR_SYMPTOM_THRESHOLD_24H=1000000) so every symptom takes the same path.',
    );
    return {
      name: 'ingestion',
      title: this.title,
      baselineLabel: 'file ledger',
      parameters: { sequential, symptoms: sustained, concurrency, fsync, 'workflows (phase 3)': 100 },
      rows,
      notes,
    };
  },
};

function kindOf(prefix: string, k: number): string {
  return `vllm_oom.${prefix}-${k}`;
}

function compare(
  label: string,
  ours: { latenciesMs: number[]; wallMs: number },
  base: { latenciesMs: number[]; wallMs: number },
  count: number,
): Row[] {
  const a = summarise(ours.latenciesMs);
  const b = summarise(base.latenciesMs);
  return [
    { metric: `${label}: p50 latency`, unit: 'ms', value: a.p50, baseline: b.p50, better: 'lower' },
    { metric: `${label}: p99 latency`, unit: 'ms', value: a.p99, baseline: b.p99, better: 'lower' },
    {
      metric: `${label}: sustained rate`,
      unit: 'symptoms/s',
      value: count / (ours.wallMs / 1000),
      baseline: count / (base.wallMs / 1000),
      better: 'higher',
    },
  ];
}
