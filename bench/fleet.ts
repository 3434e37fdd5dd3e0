// Fleet simulation: 100 GPU hosts × 3 symptom kinds on one dev server, one Worker per host task queue
// (all in one worker process). recordSymptom latency on the quiet hosts is measured once with the fleet
// calm, then again while 10 hosts take symptom storms at once: the ratio says whether one host's storm
// slows down the others.
import type { Client } from '@temporalio/client';
import { recordSymptom } from '../src/client/symptoms.js';
import type { SymptomInput } from '../src/domain/symptom.js';
import { rssMib } from './lib/machine.js';
import type { BenchOptions, BenchResult, Benchmark, Row } from './lib/report.js';
import { benchWorkerEnv, startBenchStack, startBenchWorker } from './lib/stack.js';
import { summarise, timedPool } from './lib/stats.js';

const KINDS = ['vllm_oom', 'vllm_kv_cache', 'vllm_startup_oom'];

/** Errors answered to recordSymptom (then sent again, as the observer's spool would), by message. */
const refusals = new Map<string, number>();

async function send(client: Client, host: string, symptom: SymptomInput): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await recordSymptom(client, host, symptom);
      return;
    } catch (err) {
      const why = (err instanceof Error ? err.message : String(err)).slice(0, 160);
      refusals.set(why, (refusals.get(why) ?? 0) + 1);
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

export const fleet: Benchmark = {
  name: 'fleet',
  title: 'Fleet: 100 hosts × 3 kinds, storms on 10 hosts, latency on the others',
  async run({ flags, log }: BenchOptions): Promise<BenchResult> {
    const hostCount = flags.hosts ?? 100;
    const storming = Math.min(hostCount - 1, flags.storming ?? 10);
    const probesPerHost = flags.probes ?? 5;
    const stormPerHost = flags.symptoms ?? 300;
    const stormConcurrency = flags['storm-concurrency'] ?? 4;
    const probeConcurrency = 8;
    const hosts = Array.from({ length: hostCount }, (_, i) => `bench-fleet-${String(i).padStart(3, '0')}`);
    const stormHosts = hosts.slice(0, storming);
    const quietHosts = hosts.slice(storming);
    const stack = await startBenchStack(log);
    const rows: Row[] = [];
    let stormSent = 0;
    try {
      const t0 = Date.now();
      const worker = await startBenchWorker(stack.server.address, hosts, benchWorkerEnv(stack.dataDir));
      log(`${hostCount} host workers up in ${Date.now() - t0} ms (one process, pid ${worker.pid})`);
      try {
        // Start every (host, kind) workflow before measuring.
        await timedPool(
          hostCount * KINDS.length,
          16,
          (i) =>
            send(stack.client, hosts[i % hostCount]!, {
              kind: KINDS[Math.floor(i / hostCount)]!,
              id: `warm-${i}`,
            }),
          (n) => log(`  warm-up ${n}/${hostCount * KINDS.length} workflows started`),
        );
        const probe = (tag: string) =>
          timedPool(quietHosts.length * probesPerHost, probeConcurrency, (i) =>
            send(stack.client, quietHosts[i % quietHosts.length]!, {
              kind: KINDS[i % KINDS.length]!,
              id: `${tag}-${i}`,
            }),
          );
        const calm = await probe('calm');
        log(`calm: ${calm.latenciesMs.length} probes on ${quietHosts.length} quiet hosts`);

        // Storms: every storming host gets its symptoms as fast as `stormConcurrency` lanes allow, and
        // keeps storming until the probes are done.
        let probing = true;
        const storm = Promise.all(
          stormHosts.map(async (host) => {
            let n = 0;
            const lane = async () => {
              while (probing || n < stormPerHost) {
                const i = n++;
                await send(stack.client, host, { kind: KINDS[i % KINDS.length]!, id: `storm-${i}` });
                stormSent++;
              }
            };
            await Promise.all(Array.from({ length: stormConcurrency }, lane));
          }),
        );
        const stormStart = Date.now();
        // Let the storm build up before the probes start.
        await new Promise((r) => setTimeout(r, 2000));
        const stormy = await probe('storm');
        probing = false;
        log(`storm: ${stormy.latenciesMs.length} probes done; ${stormSent} storm symptoms so far`);
        await storm;
        const stormMs = Date.now() - stormStart;
        const rss = await rssMib(worker.pid);
        const a = summarise(stormy.latenciesMs);
        const b = summarise(calm.latenciesMs);
        rows.push(
          {
            metric: 'quiet hosts: recordSymptom p50 (storm vs calm)',
            unit: 'ms',
            value: a.p50,
            baseline: b.p50,
            better: 'lower',
          },
          {
            metric: 'quiet hosts: recordSymptom p99 (storm vs calm)',
            unit: 'ms',
            value: a.p99,
            baseline: b.p99,
            better: 'lower',
          },
          {
            metric: 'quiet hosts: max (storm vs calm)',
            unit: 'ms',
            value: a.max,
            baseline: b.max,
            better: 'lower',
          },
          {
            metric: 'quiet hosts: probes per second (storm vs calm)',
            unit: 'probes/s',
            value: a.n / (stormy.wallMs / 1000),
            baseline: b.n / (calm.wallMs / 1000),
            better: 'higher',
          },
          { metric: `storm: symptoms into ${storming} hosts`, unit: 'symptoms', value: stormSent },
          { metric: 'storm: rate', unit: 'symptoms/s', value: stormSent / (stormMs / 1000) },
          {
            metric: 'errors answered and sent again',
            unit: 'calls',
            value: [...refusals.values()].reduce((a, b) => a + b, 0),
            better: 'lower',
          },
          { metric: `worker process RSS (${hostCount} Workers)`, unit: 'MiB', value: rss ?? NaN },
        );
      } finally {
        await worker.stop();
      }
    } finally {
      await stack.stop();
    }
    return {
      name: 'fleet',
      title: this.title,
      baselineLabel: 'calm fleet',
      parameters: {
        hosts: hostCount,
        kinds: KINDS.join(', '),
        'storming hosts': storming,
        'storm lanes per storming host': stormConcurrency,
        'storm symptoms per host (at least)': stormPerHost,
        'probes per quiet host': probesPerHost,
        'probes in flight': probeConcurrency,
      },
      rows,
      notes: [
        ...[...refusals].map(([why, n]) => `error ${n}× (sent again): ${why}`),
        'One dev server (SQLite file), one worker process with one Worker per host task queue (kloros-healing.<host>) sharing a NativeConnection and one workflow bundle; production workflows and coordination activities, constant-time stand-ins for the GPU activities.',
        'Ratio = with the storm ÷ calm, same probes (recordSymptom on the quiet hosts, all three kinds). On a machine with few cores the storm also competes for the CPU that the dev server, the worker and the bench client share, so a ratio above 1 there measures CPU contention as much as Temporal; on a real fleet every host has its own worker.',
        'Storming hosts escalate (default threshold 3) and wait for a window 12 h away: no canary runs during the bench.',
      ],
    };
  },
};
