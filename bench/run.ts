// `npm run bench [-- NAME ...] [--FLAG=NUMBER ...]`: runs every benchmark (or those named), prints each
// one's table — kloros-healing's figures beside the baseline's, run on the same machine, and their
// ratio — and writes bench/results/<name>.md and .json with the machine's details.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { boundedCost } from './bounded-cost.js';
import { canaryOverhead } from './canary-overhead.js';
import { fleet } from './fleet.js';
import { idle } from './idle.js';
import { ingestion } from './ingestion.js';
import { prediction } from './prediction.js';
import { machineInfo, type MachineInfo } from './lib/machine.js';
import { type BenchResult, type Benchmark, machineMarkdown, textTable, writeResult } from './lib/report.js';
import { REPO_ROOT } from './lib/stack.js';

const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
const OBSERVER_BENCH = join(REPO_ROOT, 'bench', 'observer-vs-grep.ts');

const USAGE = `usage: npm run bench [-- [NAME ...] [--FLAG=NUMBER ...]]

Benchmarks: ingestion, bounded-cost, canary, fleet, idle, prediction, observer (when bench/observer-vs-grep.ts
exists).
Without a name, all of them run one after the other.

Flags (numbers; each benchmark reads those it knows):
  --symptoms=N      ingestion: symptoms per sustained phase (2000); bounded-cost: symptoms (100000)
  --concurrency=N   symptoms in flight (ingestion 8, bounded-cost 8)
  --sequential=N    ingestion: symptoms sent one at a time (200)
  --fsync=0|1       ingestion baseline: fsync each ledger append (1)
  --limit=N         bounded-cost: KLR_HISTORY_EVENTS_LIMIT of the worker (10000, the default)
  --canaries=N      canary: simulated canaries, one per host, windows a minute apart (5)
  --hosts=N         fleet: hosts (100); --storming=N hosts under a storm (10); --probes=N per quiet
                    host and phase (5); --probe-concurrency=N probes in flight (2); --storm-rate=N
                    symptoms/s per storming host in the paced storm (2); --storm-concurrency=N calls in
                    flight per storming host in the flood (4); idle: worker processes, one per host (3)
  --idle-minutes=N  idle: how long the hosts stay idle while their metrics are scraped every 15 s (3)

Environment: KLR_BENCH_NOTE=text is written into the results (e.g. "quiet machine").
KLR_BENCH_BEFORE=REV: idle's baseline, the worker of that git revision (a temporary worktree).

Examples:
  npm run bench
  npm run bench -- ingestion --symptoms=500
  npm run bench -- bounded-cost --symptoms=20000`;

/**
 * The observer-vs-grep benchmark (npm run bench:observer), written separately as a script that prints
 * and writes its own table (bench/results/observer-vs-grep.md): run as its own process (importing it
 * would run it), its output passed through.
 */
const observer: Benchmark = {
  name: 'observer',
  title: 'Observer scan vs grep (bench/observer-vs-grep.ts)',
  async run(): Promise<BenchResult> {
    await execa(process.execPath, ['--import', 'tsx', OBSERVER_BENCH], { stdio: 'inherit', cwd: REPO_ROOT });
    return {
      name: 'observer',
      title: this.title,
      baselineLabel: 'grep',
      parameters: {},
      rows: [],
      notes: [
        'Figures: printed above and written to bench/results/observer-vs-grep.md by the script itself.',
      ],
    };
  },
};

function benchmarks(): Benchmark[] {
  const all = [ingestion, boundedCost, canaryOverhead, fleet, idle, prediction];
  if (existsSync(OBSERVER_BENCH)) all.push(observer);
  return all;
}

function parseArgs(argv: string[]): { names: string[]; flags: Record<string, number> } {
  const names: string[] = [];
  const flags: Record<string, number> = {};
  for (const arg of argv) {
    if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    const m = /^--([a-z][a-z-]*)=(.+)$/.exec(arg);
    if (m) {
      const value = Number(m[2]);
      if (!Number.isFinite(value) || value < 0) {
        console.error(`--${m[1]}=${m[2]}: expected a number ≥ 0\n\n${USAGE}`);
        process.exit(2);
      }
      flags[m[1]!] = value;
    } else if (arg.startsWith('-')) {
      console.error(`${arg}: unknown option (flags are --NAME=NUMBER)\n\n${USAGE}`);
      process.exit(2);
    } else names.push(arg);
  }
  return { names, flags };
}

const { names, flags } = parseArgs(process.argv.slice(2));
const available = benchmarks();
const unknown = names.filter((n) => !available.some((b) => b.name === n));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; known: ${available.map((b) => b.name).join(', ')}`);
  process.exit(2);
}
const selected = names.length ? available.filter((b) => names.includes(b.name)) : available;

const machine: MachineInfo = await machineInfo();
console.log(`machine:\n${machineMarkdown(machine)}\n`);
let failed = 0;
for (const bench of selected) {
  const t0 = Date.now();
  const log = (line: string) =>
    console.log(`[${bench.name} +${((Date.now() - t0) / 1000).toFixed(1)} s] ${line}`);
  console.log(`=== ${bench.title}`);
  try {
    const result = await bench.run({ flags, log });
    result.durationMs = Date.now() - t0;
    console.log(`\n${textTable(result)}\n`);
    if (result.rows.length > 0) {
      const files = await writeResult(RESULTS_DIR, result, { ...machine, date: new Date(t0).toISOString() });
      console.log(`written: ${files.map((f) => f.slice(REPO_ROOT.length + 1)).join(', ')}\n`);
    }
  } catch (err) {
    failed++;
    console.error(
      `${bench.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  }
}
process.exit(failed ? 1 : 0);
