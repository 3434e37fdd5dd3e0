// Bounded cost: a storm of 100,000 symptoms into one (host, kind). The workflow must continue as new
// before its history grows past KLR_HISTORY_EVENTS_LIMIT, carry its state through every run, count each
// distinct symptom exactly once, and the worker's memory must not grow with the symptoms sent.
import { recordSymptom } from '../src/temporal/symptoms.js';
import { healingWorkflowId } from '../src/domain/identifiers.js';
import { stateQuery } from '../src/workflows/healing-messages.js';
import { rssMib } from './lib/machine.js';
import type { BenchOptions, BenchResult, Benchmark, Row } from './lib/report.js';
import { benchWorkerEnv, startBenchStack, startBenchWorker } from './lib/stack.js';
import { summarise, timedPool } from './lib/stats.js';

const HOST = 'bench-bounded';
const KIND = 'vllm_oom';
/** Every REDELIVER-th symptom is sent a second time with the same id: it must count once. */
const REDELIVER = 100;

export const boundedCost: Benchmark = {
  name: 'bounded-cost',
  title: 'Bounded cost: 100,000 symptoms into one kind',
  async run({ flags, log }: BenchOptions): Promise<BenchResult> {
    const distinct = flags.symptoms ?? 100_000;
    // Below Temporal's 10 updates in flight per workflow (history.maxInFlightUpdates).
    const concurrency = flags.concurrency ?? 8;
    const limit = flags.limit ?? 10_000;
    const stack = await startBenchStack(log);
    const rows: Row[] = [];
    const notes: string[] = [];
    try {
      const worker = await startBenchWorker(
        stack.server.address,
        [HOST],
        benchWorkerEnv(stack.dataDir, { KLR_HISTORY_EVENTS_LIMIT: String(limit) }),
      );
      try {
        await recordSymptom(stack.client, HOST, { kind: KIND, id: 'warm-up' });
        const workerBefore = await rssMib(worker.pid);
        const serverBefore = await rssMib(stack.server.pid);
        log(`warm-up done; worker RSS ${workerBefore} MiB, dev server RSS ${serverBefore} MiB`);
        // Sends: symptom i, plus a redelivery of i right after every REDELIVER-th one.
        const sends: string[] = [];
        for (let i = 0; i < distinct; i++) {
          sends.push(`s-${i}`);
          if (i % REDELIVER === REDELIVER - 1) sends.push(`s-${i}`);
        }
        let peakWorkerRss = workerBefore ?? 0;
        const sampler = setInterval(() => {
          void rssMib(worker.pid).then((r) => (peakWorkerRss = Math.max(peakWorkerRss, r ?? 0)));
        }, 1000);
        const refusals = new Map<string, number>();
        const t0 = Date.now();
        let result;
        try {
          result = await timedPool(
            sends.length,
            concurrency,
            async (i) => {
              // A refused update is sent again, as the observer's spool would: count why it was refused.
              for (let attempt = 1; ; attempt++) {
                try {
                  return await recordSymptom(stack.client, HOST, { kind: KIND, id: sends[i] });
                } catch (err) {
                  const why = (err instanceof Error ? err.message : String(err)).slice(0, 160);
                  refusals.set(why, (refusals.get(why) ?? 0) + 1);
                  if (attempt >= 10) throw err;
                  await new Promise((r) => setTimeout(r, 200 * attempt));
                }
              }
            },
            (n) => {
              const s = (Date.now() - t0) / 1000;
              log(`  ${n}/${sends.length} sent, ${Math.round(n / s)}/s`);
            },
          );
        } finally {
          clearInterval(sampler);
        }
        const workerAfter = await rssMib(worker.pid);
        const serverAfter = await rssMib(stack.server.pid);
        const handle = stack.client.workflow.getHandle(healingWorkflowId(HOST, KIND));
        const state = await handle.query(stateQuery);
        log(`sent in ${Math.round(result.wallMs / 1000)} s; counting history events per run`);

        const runs: { runId: string; status: string; events: number }[] = [];
        for await (const wf of stack.client.workflow.list({ query: `WorkflowId = "${handle.workflowId}"` })) {
          const history = await stack.client.workflow.getHandle(handle.workflowId, wf.runId).fetchHistory();
          runs.push({ runId: wf.runId, status: wf.status.name, events: history.events?.length ?? 0 });
        }
        const events = runs.map((r) => r.events);
        const continued = runs.filter((r) => r.status === 'CONTINUED_AS_NEW').length;
        const lat = summarise(result.latenciesMs);
        const expected = distinct + 1; // the warm-up symptom counts too
        rows.push(
          { metric: 'symptoms sent (incl. redeliveries)', unit: 'updates', value: sends.length },
          {
            metric: 'distinct symptoms counted in 24 h',
            unit: 'symptoms',
            value: state.count24h,
            baseline: expected,
          },
          {
            metric: 'largest history of one run',
            unit: 'events',
            value: Math.max(...events),
            baseline: limit,
            better: 'lower',
          },
          {
            metric: 'mean history per run',
            unit: 'events',
            value: events.reduce((a, b) => a + b, 0) / events.length,
            baseline: limit,
            better: 'lower',
          },
          { metric: 'runs (continue-as-new count + 1)', unit: 'runs', value: runs.length },
          { metric: 'continue-as-new count', unit: 'runs', value: continued },
          {
            metric: 'worker RSS after vs before',
            unit: 'MiB',
            value: workerAfter ?? NaN,
            baseline: workerBefore,
            better: 'lower',
          },
          {
            metric: 'worker RSS peak vs before',
            unit: 'MiB',
            value: peakWorkerRss,
            baseline: workerBefore,
            better: 'lower',
          },
          {
            metric: 'dev server RSS after vs before',
            unit: 'MiB',
            value: serverAfter ?? NaN,
            baseline: serverBefore,
            better: 'lower',
          },
          {
            metric: 'sustained rate',
            unit: 'updates/s',
            value: sends.length / (result.wallMs / 1000),
            better: 'higher',
          },
          { metric: 'recordSymptom p50 latency', unit: 'ms', value: lat.p50, better: 'lower' },
          { metric: 'recordSymptom p99 latency', unit: 'ms', value: lat.p99, better: 'lower' },
          {
            metric: 'updates refused and sent again',
            unit: 'updates',
            value: [...refusals.values()].reduce((a, b) => a + b, 0),
            better: 'lower',
          },
          { metric: 'redeliveries sent (same id)', unit: 'updates', value: sends.length - distinct },
          {
            metric: 'redeliveries that reached the workflow (rest: server update-id dedup)',
            unit: 'updates',
            value: state.totals.duplicates,
          },
        );
        log(`runs: ${runs.length}, events per run: ${events.join(', ')}`);
        for (const [why, n] of refusals) notes.push(`refused ${n}×: ${why}`);
      } finally {
        await worker.stop();
      }
    } finally {
      await stack.stop();
    }
    return {
      name: 'bounded-cost',
      title:
        distinct === 100_000
          ? this.title
          : `Bounded cost: ${distinct.toLocaleString('en-US')} symptoms into one kind`,
      baselineLabel: 'bound / before / expected',
      parameters: {
        'distinct symptoms': distinct,
        'redelivered (same id, every 100th)': Math.floor(distinct / REDELIVER),
        concurrency,
        KLR_HISTORY_EVENTS_LIMIT: limit,
      },
      rows,
      notes: [
        ...notes,
        'Baseline column: for history, the KLR_HISTORY_EVENTS_LIMIT bound (ratio ≤ 1 = bounded); for RSS, the same process before the storm (ratio ≈ 1 = no growth); for counts, the number expected (ratio 1 = none lost, none doubled).',
        "Runs listed with client.workflow.list by workflow id; each run's history fetched by its run id (fetchHistory). The last run is still running (it holds the count).",
        'The worker (production workflows, constant-time stand-ins for the GPU activities) runs as its own process; RSS read from /proc/<pid>/status (VmRSS). The dev server runs on a SQLite file.',
        "A redelivered symptom carries the same update id (symptom:<id>): within one run the server answers it from the first update without running it again; across a continue-as-new the workflow's own id window catches it. Either way the count row must equal the expected count.",
        'The count includes the warm-up symptom sent before the storm (expected = distinct + 1). The escalation arms at the 3rd symptom (default threshold); the window is 12 h away, so no canary runs.',
      ],
    };
  },
};
