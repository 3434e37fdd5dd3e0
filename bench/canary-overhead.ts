// Canary orchestration overhead: real simulated heal cycles (the simulated vLLM under its supervisor,
// the production worker process, the dev server), one per host, each host's maintenance window opening a
// minute after the one before, so that the canaries run one at a time as they would on a fleet's hosts
// (two at once on two cores measured CPU contention, not the healer). Measured: how long after the
// window's opening the canary starts and the restart command reaches the supervisor, and what the canary
// costs beyond the service's own restart-until-healthy time (timed right after each canary, same
// supervisor command, same machine) and the configured soak: the median and the spread over the canaries.
import { readFile } from 'node:fs/promises';
import type { Client } from '@temporalio/client';
import { execa } from 'execa';
import { recordSymptom } from '../src/temporal/symptoms.js';
import { healingWorkflowId } from '../src/domain/identifiers.js';
import { type HealingStateView, stateQuery } from '../src/workflows/healing-messages.js';
import { waitHealthy } from '../src/service/health.js';
import { supervisorCommand } from '../test/support/heal-stack.js';
import { type Scenario, complete, startScenario, torchOomDetails } from '../test/support/heal-scenario.js';
import { decisionsOf } from '../test/support/decisions.js';
import type { BenchOptions, BenchResult, Benchmark, Row } from './lib/report.js';
import { REPO_ROOT, startBenchStack } from './lib/stack.js';
import { summarise } from './lib/stats.js';

const KIND = 'vllm_oom';
const SOAK_SECONDS = 2;

interface CanaryFigures {
  host: string;
  windowToStartMs: number;
  windowToRestartMs: number;
  wallMs: number;
  downtimeMs: number;
  ownRestartHealthyMs: number;
}

export const canaryOverhead: Benchmark = {
  name: 'canary',
  title: 'Canary orchestration overhead (simulated vLLM, real worker process)',
  async run({ flags, log }: BenchOptions): Promise<BenchResult> {
    const count = Math.max(1, flags.canaries ?? 5);
    const stack = await startBenchStack(log);
    const scenarios: Scenario[] = [];
    const figures: CanaryFigures[] = [];
    // Host i's window opens i minutes after the first, which opens at least two minutes from now.
    const firstOpening = Math.ceil((Date.now() + 2 * 60_000 + count * 5_000) / 60_000) * 60_000;
    try {
      for (let i = 0; i < count; i++) {
        scenarios.push(
          await startScenario({
            host: `bench-canary-${process.pid}-${i}`,
            temporalAddress: stack.server.address,
            serving: { 'gpu-memory-utilization': 0.98, 'max-model-len': 8192, 'max-num-seqs': 256 },
            worker: { KLR_CANARY_SOAK_SECONDS: String(SOAK_SECONDS) },
            windowLeadMs: firstOpening + i * 60_000 - Date.now() - 1,
          }),
        );
        log(`host ${i + 1}/${count} up, window ${scenarios[i]!.window} UTC`);
      }
      // Escalate every host with the symptom of its service's real OOM.
      for (const s of scenarios) {
        const res = await complete(s.service.baseUrl);
        if (res.status !== 500)
          throw new Error(`expected the over-aggressive config to OOM, got ${res.status}`);
        const log_ = await readFile(s.service.logPath, 'utf8');
        const line = log_.split('\n').find((l) => l.includes('CUDA out of memory'));
        if (!line) throw new Error('no OOM line in the service log');
        const details = torchOomDetails(line);
        const host = s.workerEnv.KLR_HOST!;
        for (let k = 1; k <= 3; k++)
          await recordSymptom(stack.client, host, { kind: KIND, id: `bench:${host}:${k}`, details });
      }
      const opensAt = Math.max(...scenarios.map((s) => s.windowOpensAt));
      log(`all escalated; the last window opens in ${Math.round((opensAt - Date.now()) / 1000)} s`);
      for (const s of scenarios) {
        const host = s.workerEnv.KLR_HOST!;
        const done = await waitForCanary(stack.client, host, s.windowOpensAt + 4 * 60_000, log);
        const canary = done.lastCanary!;
        if (canary.outcome !== 'promoted')
          throw new Error(`${host}: canary ${canary.outcome}: ${canary.reason}`);
        const started = decisionsOf(done, 'canary_started')[0];
        const promoted = decisionsOf(done, 'candidate_promoted')[0];
        if (!started || !promoted) throw new Error(`${host}: canary decisions missing`);
        const journal = await readFile(s.service.logPath, 'utf8');
        // The first thing the supervisor notes when the restart command reaches it (the OOMed service
        // may already be down, so there may be nothing to stop).
        const stopping = journal
          .split('\n')
          .filter((l) => /supervisor\[\d+\]: (Stopping service|Restarting service \(requested\))/.test(l))
          .map((l) => Date.parse(l.slice(0, l.indexOf(' '))))
          .find((t) => t >= s.windowOpensAt);
        if (stopping === undefined)
          throw new Error(`${host}: no restart in the supervisor log after the window opened`);
        // The service's own restart-until-healthy time, same config, same machine, no healer involved.
        const ownRestartHealthyMs = await timeOwnRestart(s);
        figures.push({
          host,
          windowToStartMs: started.at - s.windowOpensAt,
          windowToRestartMs: stopping - s.windowOpensAt,
          wallMs: promoted.at - started.at,
          downtimeMs: canary.downtimeMs,
          ownRestartHealthyMs,
        });
        log(`${host}: ${JSON.stringify(figures.at(-1))}`);
      }
    } finally {
      for (const s of scenarios) await s.stop();
      await stack.stop();
    }
    const med = (f: (c: CanaryFigures) => number) => summarise(figures.map(f)).p50;
    const ratios = summarise(figures.map((c) => c.downtimeMs / c.ownRestartHealthyMs));
    const spread = (f: (c: CanaryFigures) => number) => {
      const v = figures.map(f).sort((a, b) => a - b);
      return `${v[0]} … ${v.at(-1)}`;
    };
    const soakMs = SOAK_SECONDS * 1000;
    const rows: Row[] = [
      {
        metric: 'window open → canary started',
        unit: 'ms',
        value: med((c) => c.windowToStartMs),
        better: 'lower',
      },
      {
        metric: 'window open → restart command (supervisor log)',
        unit: 'ms',
        value: med((c) => c.windowToRestartMs),
        better: 'lower',
      },
      {
        metric: 'canary downtime (restart → healthy, canary record) vs service alone',
        unit: 'ms',
        value: med((c) => c.downtimeMs),
        baseline: med((c) => c.ownRestartHealthyMs),
        better: 'lower',
      },
      {
        metric: 'canary downtime ÷ service alone, each canary: median (min … max)',
        unit: '×',
        value: `${ratios.p50.toFixed(2)} (${Math.min(...figures.map((c) => c.downtimeMs / c.ownRestartHealthyMs)).toFixed(2)} … ${ratios.max.toFixed(2)})`,
      },
      {
        metric: 'canary downtime, min … max (service alone)',
        unit: 'ms',
        value: `${spread((c) => c.downtimeMs)} (${spread((c) => c.ownRestartHealthyMs)})`,
      },
      {
        metric: 'canary wall time vs service restart+health + soak',
        unit: 'ms',
        value: med((c) => c.wallMs),
        baseline: med((c) => c.ownRestartHealthyMs + soakMs),
        better: 'lower',
      },
      {
        metric: 'orchestration overhead (wall − downtime − soak)',
        unit: 'ms',
        value: med((c) => c.wallMs - c.downtimeMs - soakMs),
        better: 'lower',
      },
      {
        metric: 'orchestration overhead (wall − service alone − soak)',
        unit: 'ms',
        value: med((c) => c.wallMs - c.ownRestartHealthyMs - soakMs),
        better: 'lower',
      },
      ...figures.map((c) => ({
        metric: `${c.host}: wall / downtime / service alone / window→restart`,
        unit: 'ms',
        value: `${c.wallMs} / ${c.downtimeMs} / ${c.ownRestartHealthyMs} / ${c.windowToRestartMs}`,
      })),
    ];
    return {
      name: 'canary',
      title: this.title,
      baselineLabel: 'service alone',
      parameters: {
        canaries: count,
        'soak (KLR_CANARY_SOAK_SECONDS)': SOAK_SECONDS,
        'simulated start-up (SIM_STARTUP_MS)': 1000,
      },
      rows,
      notes: [
        'Figures are medians over the canaries (one per host, windows a minute apart, so one canary at a time); the per-host rows give each one, and the spread rows the smallest and largest.',
        '"service alone": right after each canary, before the next window opens, the bench restarts that service itself with the same supervisor command and polls /health every 50 ms (the canary\'s own health interval) — the restart-until-healthy time with no healer involved.',
        'Canary wall time = "canary started" → "candidate promoted" decisions; it includes backing up and writing the config, the restart, the health wait, one probe request, a VRAM measurement and the soak.',
        'window open → restart command: the first supervisor journal line of the restart (Stopping service / Restarting service) at or after the window opened. The service had crashed on its OOM, so the canary restart had nothing to stop, while the "service alone" restart stops the healthy service first.',
        "The window opens on a minute boundary; the canary starts when the workflow's durable timer fires, then asks the host coordinator for the lease (a workflow round trip) before the canary activity runs.",
      ],
    };
  },
};

async function waitForCanary(
  client: Client,
  host: string,
  deadline: number,
  log: (line: string) => void,
): Promise<HealingStateView> {
  let lastPhase = '';
  for (;;) {
    const s = await client.workflow.getHandle(healingWorkflowId(host, KIND)).query(stateQuery);
    if (s.lastCanary) return s;
    if (s.phase !== lastPhase) log(`${host}: ${s.phase} — ${s.next}`);
    lastPhase = s.phase;
    if (Date.now() > deadline) throw new Error(`${host}: no canary by the deadline (phase ${s.phase})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function timeOwnRestart(s: Scenario): Promise<number> {
  const [file, ...args] = supervisorCommand('restart', s.service.stateDir) as [string, ...string[]];
  const t0 = performance.now();
  const restart = execa(file, args, { cwd: REPO_ROOT, timeout: 60_000 });
  // The restart command returns once the new process is spawned; healthy is when /health answers 200.
  await restart;
  // The canary's own poller (src/service/health.ts), so both sides have the same resolution.
  await waitHealthy({ baseUrl: s.service.baseUrl, deadlineMs: 60_000 });
  return Math.round(performance.now() - t0);
}
