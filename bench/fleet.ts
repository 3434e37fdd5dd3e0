// Fleet simulation: 100 GPU hosts × 3 symptom kinds on one dev server. recordSymptom latency on the quiet
// hosts is measured three times: with the fleet calm, while 10 hosts take a paced symptom storm (a
// severe but bounded one, --storm-rate per host), and while the same 10 hosts are flooded as fast as the
// machine goes. The first ratio says whether one host's storm slows the others down; the flood says where
// the shared parts (one dev server, one machine) saturate.
//
// As on a real fleet, the storming hosts' Workers are not the quiet hosts' Workers: each group runs in its
// own worker process (a real fleet has one per GPU host).
import type { Client } from '@temporalio/client';
import { recordSymptom } from '../src/temporal/symptoms.js';
import { healingWorkflowId } from '../src/domain/identifiers.js';
import type { SymptomInput } from '../src/domain/symptom.js';
import { stateQuery } from '../src/workflows/healing-messages.js';
import { rssMib } from './lib/machine.js';
import type { BenchOptions, BenchResult, Benchmark, Row } from './lib/report.js';
import { benchWorkerEnv, startBenchStack, startBenchWorker } from './lib/stack.js';
import { type LatencySummary, summarise, timedPool } from './lib/stats.js';

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Storm {
  /** Resolves once every storming host has stopped (after `stop()`), with the symptoms sent. */
  done: Promise<number>;
  stop(): void;
  sent(): number;
}

/**
 * Symptoms into every storming host until stopped: `ratePerHost` a second each (paced, one lane per
 * host), or as fast as `lanes` concurrent calls per host go when the rate is 0 (a flood).
 */
function storm(client: Client, hosts: string[], tag: string, ratePerHost: number, lanes: number): Storm {
  let running = true;
  let sent = 0;
  const perHost = hosts.map(async (host) => {
    let n = 0;
    const next = async () => {
      const i = n++;
      await send(client, host, { kind: KINDS[i % KINDS.length]!, id: `${tag}-${i}` });
      sent++;
    };
    if (ratePerHost > 0) {
      // Paced: symptom i is due at start + i/rate; a late one goes at once (no catch-up burst beyond that).
      const start = Date.now();
      while (running) {
        const due = start + (n * 1000) / ratePerHost;
        if (due > Date.now()) await sleep(due - Date.now());
        if (running) await next();
      }
    } else {
      await Promise.all(
        Array.from({ length: lanes }, async () => {
          while (running) await next();
        }),
      );
    }
  });
  return {
    done: Promise.all(perHost).then(() => sent),
    stop: () => {
      running = false;
    },
    sent: () => sent,
  };
}

export const fleet: Benchmark = {
  name: 'fleet',
  title: 'Fleet: 100 hosts × 3 kinds, storms on 10 hosts, latency on the others',
  async run({ flags, log }: BenchOptions): Promise<BenchResult> {
    const hostCount = flags.hosts ?? 100;
    const storming = Math.min(hostCount - 1, flags.storming ?? 10);
    const probesPerHost = flags.probes ?? 5;
    const stormRate = flags['storm-rate'] ?? 2;
    const floodLanes = flags['storm-concurrency'] ?? 4;
    const probeConcurrency = flags['probe-concurrency'] ?? 2;
    const hosts = Array.from({ length: hostCount }, (_, i) => `bench-fleet-${String(i).padStart(3, '0')}`);
    const stormHosts = hosts.slice(0, storming);
    const quietHosts = hosts.slice(storming);
    const stack = await startBenchStack(log);
    const rows: Row[] = [];
    const stormedIds = { paced: 0, flood: 0 };
    try {
      const t0 = Date.now();
      const env = benchWorkerEnv(stack.dataDir);
      const quietWorker = await startBenchWorker(stack.server.address, quietHosts, env);
      const stormWorker = await startBenchWorker(stack.server.address, stormHosts, env);
      log(
        `${quietHosts.length} quiet + ${stormHosts.length} storming host Workers up in ${Date.now() - t0} ms (pids ${quietWorker.pid}, ${stormWorker.pid})`,
      );
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
        const probe = async (tag: string) => {
          const r = await timedPool(quietHosts.length * probesPerHost, probeConcurrency, (i) =>
            send(stack.client, quietHosts[i % quietHosts.length]!, {
              kind: KINDS[i % KINDS.length]!,
              id: `${tag}-${i}`,
            }),
          );
          return { ...summarise(r.latenciesMs), rate: r.latenciesMs.length / (r.wallMs / 1000) };
        };
        const calm = await probe('calm');
        log(`calm: ${calm.n} probes, p50 ${calm.p50.toFixed(1)} ms`);

        const during = async (tag: string, ratePerHost: number) => {
          const s = storm(stack.client, stormHosts, tag, ratePerHost, floodLanes);
          const started = Date.now();
          await sleep(2000); // let the storm build up before the probes start
          const p = await probe(`probe-${tag}`);
          s.stop();
          const sent = await s.done;
          const seconds = (Date.now() - started) / 1000;
          log(
            `${tag}: ${p.n} probes, p50 ${p.p50.toFixed(1)} ms; ${sent} storm symptoms in ${seconds.toFixed(1)} s`,
          );
          return { probes: p, sent, rate: sent / seconds };
        };
        const paced = await during('paced', stormRate);
        stormedIds.paced = paced.sent;
        const flood = await during('flood', 0);
        stormedIds.flood = flood.sent;

        // Nothing lost, nothing doubled: the storming hosts' workflows counted every distinct id once.
        let counted = 0;
        for (const host of stormHosts) {
          for (const kind of KINDS) {
            const v = await stack.client.workflow.getHandle(healingWorkflowId(host, kind)).query(stateQuery);
            counted += v.totals.counted;
          }
        }
        const expectedCounted = storming * KINDS.length + paced.sent + flood.sent;
        const rssQuiet = await rssMib(quietWorker.pid);
        const rssStorm = await rssMib(stormWorker.pid);

        const latencyRows = (label: string, a: LatencySummary & { rate: number }): Row[] => [
          {
            metric: `quiet hosts, ${label}: p50 vs calm`,
            unit: 'ms',
            value: a.p50,
            baseline: calm.p50,
            better: 'lower',
          },
          {
            metric: `quiet hosts, ${label}: p99 vs calm`,
            unit: 'ms',
            value: a.p99,
            baseline: calm.p99,
            better: 'lower',
          },
          {
            metric: `quiet hosts, ${label}: max vs calm`,
            unit: 'ms',
            value: a.max,
            baseline: calm.max,
            better: 'lower',
          },
          {
            metric: `quiet hosts, ${label}: probes/s vs calm`,
            unit: 'probes/s',
            value: a.rate,
            baseline: calm.rate,
            better: 'higher',
          },
        ];
        rows.push(
          ...latencyRows(`paced storm (${stormRate}/s on each of ${storming} hosts)`, paced.probes),
          { metric: 'paced storm: symptoms sent', unit: 'symptoms', value: paced.sent },
          { metric: 'paced storm: rate into the storming hosts', unit: 'symptoms/s', value: paced.rate },
          ...latencyRows(`flood (${floodLanes} in flight on each of ${storming} hosts)`, flood.probes),
          { metric: 'flood: symptoms sent', unit: 'symptoms', value: flood.sent },
          { metric: 'flood: rate into the storming hosts', unit: 'symptoms/s', value: flood.rate },
          {
            metric: 'storming hosts: symptoms counted vs sent (+ warm-up)',
            unit: 'symptoms',
            value: counted,
            baseline: expectedCounted,
          },
          {
            metric: 'errors answered and sent again',
            unit: 'calls',
            value: [...refusals.values()].reduce((a, b) => a + b, 0),
            better: 'lower',
          },
          {
            metric: `quiet hosts' worker process RSS (${quietHosts.length} Workers)`,
            unit: 'MiB',
            value: rssQuiet ?? NaN,
          },
          {
            metric: `storming hosts' worker process RSS (${storming} Workers)`,
            unit: 'MiB',
            value: rssStorm ?? NaN,
          },
        );
      } finally {
        await Promise.all([quietWorker.stop(), stormWorker.stop()]);
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
        'paced storm: symptoms per second per storming host (--storm-rate)': stormRate,
        'flood: calls in flight per storming host (--storm-concurrency)': floodLanes,
        'probes per quiet host per phase (--probes)': probesPerHost,
        'probes in flight (--probe-concurrency)': probeConcurrency,
      },
      rows,
      notes: [
        ...[...refusals].map(([why, n]) => `error ${n}× (sent again): ${why}`),
        'One dev server (SQLite file); two worker processes, one with a Worker per quiet host, one with a Worker per storming host (task queue kloros-healing.<host>, one NativeConnection and workflow bundle each); production workflows and coordination activities, constant-time stand-ins for the GPU activities.',
        'Ratio = during the storm ÷ calm, same probes (recordSymptom on the quiet hosts, all three kinds, a fixed number in flight). The paced storm is the isolation figure: a storm far above a real crash loop (one to three symptoms per restart, restarts tens of seconds apart), bounded. The flood measures saturation: on a machine with few cores it competes for the CPU that the dev server, both worker processes and the bench client share, so its ratio measures this machine as much as Temporal; on a real fleet each host has its own worker and the server its own machines.',
        "The count row checks that the storms lost and doubled nothing: the storming hosts' workflows counted every distinct id once (storm ids + one warm-up per workflow).",
        'Storming hosts escalate (default threshold 3) and wait for a window 12 h away: no canary runs during the bench.',
      ],
    };
  },
};
