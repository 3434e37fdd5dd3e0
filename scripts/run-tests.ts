// The test runner behind `npm test`: provisions the Temporal servers once (so test files don't race to
// build them), then runs every test file under Node's built-in runner, one process group per file, a
// few at a time. Nothing may hang CI: a file that reports nothing for too long, or runs past its
// deadline, is killed with all it started, and what it had reported is printed (the hung test is the one
// after its last line; Node 20's --test-timeout cannot say, it times the whole file). A file that hung is
// run once more on its own, and said so: the Java time-skipping server sometimes stops skipping time with nothing pending, which is
// the server's, not the code's (docs/testing.md, "Hangs"); a file that hangs twice, or fails, fails.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { ensureTestServer } from '../src/servers/test-server.js';
import { provisionOsDependencies } from './os-deps.js';
import { resolveTemporalCli } from '../src/servers/temporal-cli.js';

async function findTests(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = await Promise.all(
    entries.map(async (e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return e.name === 'support' ? [] : findTests(path);
      return e.name.endsWith('.test.ts') ? [path] : [];
    }),
  );
  return files.flat().sort();
}

// `--chaos` (npm run test:chaos): only the long fault-injection and randomised runs under test/chaos/;
// without it (npm test) everything else. A path filter (npm run test:only -- <part>) picks from all.
const args = process.argv.slice(2);
const chaos = args.includes('--chaos');
const filters = args.filter((a) => a !== '--chaos');
const all = await findTests('test');
const isChaos = (f: string) => relative('test', f).startsWith(`chaos${sep}`);
const files =
  filters.length > 0
    ? all.filter((f) => filters.some((x) => f.includes(x)) && (!chaos || isChaos(f)))
    : all.filter((f) => isChaos(f) === chaos);
if (files.length === 0) {
  console.error(
    `no test file matches ${filters.join(' ')}; test files: ${all.map((f) => relative('.', f)).join(', ')}`,
  );
  process.exit(2);
}

function seconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`${name}=${raw}: expected a whole number of seconds (0 for none)`);
    process.exit(2);
  }
  return n;
}
const concurrency = seconds('KLR_TEST_CONCURRENCY', 2) || 1;
// The longest test of npm test takes about 2.5 minutes on 2 cores, the longest file about 4; a chaos
// file is one long test (the random schedules: 4-9 minutes, a line per schedule) with its own stall
// handling.
const silenceS = seconds('KLR_TEST_SILENCE_S', chaos ? 600 : 300);
const fileTimeoutS = seconds('KLR_TEST_FILE_TIMEOUT_S', chaos ? 1500 : 900);
const rerunHung = process.env.KLR_TEST_RERUN_HUNG !== '0';

const say = (m: string) => console.log(`# ${m}`);
const started = Date.now();
provisionOsDependencies(files, say);
const cli = await resolveTemporalCli(say);
const testServer = await ensureTestServer(say);
say(`servers ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${cli}, ${testServer}`);

interface FileRun {
  readonly file: string;
  readonly exitCode: number | null;
  /** Why it was killed: silent too long, or past its deadline. */
  readonly hung: string | null;
  readonly counts: Readonly<Record<string, number>>;
  readonly seconds: number;
}

const running = new Set<ChildProcess>();
// Streamed when one file runs alone; otherwise each file's output is printed whole when it ends, so
// that two files' lines do not interleave.
const stream = files.length === 1 || concurrency === 1;

function runFile(file: string): Promise<FileRun> {
  const t0 = Date.now();
  // No --test-force-exit: on Node 20 it ended a file between its describe blocks, leaving tests unrun
  // with a passing summary (bad-input.test.ts: 73 of 92). A file kept alive by a leaked handle is
  // caught by the silence deadline instead.
  const nodeArgs = ['--import', 'tsx', '--test', '--test-reporter=spec'];
  const child = spawn(process.execPath, [...nodeArgs, file], {
    // Its own process group, so that the deadline ends the servers and workers its tests started too.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TEMPORAL_CLI: cli, KLR_TEST_SERVER: testServer },
  });
  running.add(child);
  const out: string[] = [];
  let hung: string | null = null;
  let heardAt = Date.now();
  const take = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    out.push(text);
    heardAt = Date.now();
    if (stream) process.stdout.write(text);
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  const watch = setInterval(() => {
    const now = Date.now();
    if (fileTimeoutS > 0 && now - t0 > fileTimeoutS * 1000)
      hung = `past its ${fileTimeoutS} s deadline (KLR_TEST_FILE_TIMEOUT_S)`;
    else if (silenceS > 0 && now - heardAt > silenceS * 1000)
      hung = `silent for ${silenceS} s (KLR_TEST_SILENCE_S)`;
    if (hung) {
      clearInterval(watch);
      killGroup(child);
    }
  }, 1000);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearInterval(watch);
      running.delete(child);
      // What the group may have left behind once its leader is gone.
      killGroup(child);
      const text = out.join('');
      if (!stream) process.stdout.write(`# ── ${relative('.', file)}\n${text}`);
      if (hung) say(`${relative('.', file)}: killed, ${hung}; the test after its last line hung`);
      resolve({
        file,
        exitCode: code,
        hung,
        counts: summaryCounts(text),
        seconds: (Date.now() - t0) / 1000,
      });
    });
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // The group is already gone.
  }
}

/** The spec reporter's closing figures ("ℹ pass 12"). */
function summaryCounts(text: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^ℹ (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm))
    counts[m[1]!] = Number(m[2]);
  return counts;
}

async function runAll(queue: string[]): Promise<FileRun[]> {
  const results: FileRun[] = [];
  const next = async (): Promise<void> => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift())
      results.push(await runFile(file));
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, next));
  return results;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    for (const child of running) killGroup(child);
    process.exit(130);
  });

// The longest files first (the end-to-end ones take 1.5-2.5 minutes each), so that the run does not end
// with one lane on a long file while the other idles.
const weight = (f: string) =>
  /[/\\]e2e[/\\]/.test(f) ? 0 : /[/\\](adversarial|observer|workflows|client)[/\\]/.test(f) ? 1 : 2;
const first = await runAll([...files].sort((a, b) => weight(a) - weight(b)));
const hung = first.filter((r) => r.hung);
const reruns: FileRun[] = [];
if (rerunHung && hung.length > 0) {
  say(`hung, run once more on their own: ${hung.map((r) => relative('.', r.file)).join(', ')}`);
  for (const r of hung) reruns.push(...(await runAll([r.file])));
}

const final = new Map(first.map((r) => [r.file, r]));
for (const r of reruns) final.set(r.file, r);
const total: Record<string, number> = {};
for (const r of final.values()) for (const [k, v] of Object.entries(r.counts)) total[k] = (total[k] ?? 0) + v;
const failed = [...final.values()].filter((r) => r.exitCode !== 0 || r.hung);
say(
  `${final.size} files in ${((Date.now() - started) / 1000).toFixed(0)} s: ` +
    ['tests', 'pass', 'fail', 'cancelled', 'skipped', 'todo'].map((k) => `${k} ${total[k] ?? 0}`).join(', '),
);
for (const r of hung) {
  const again = reruns.find((x) => x.file === r.file);
  say(
    `HUNG ${relative('.', r.file)} (${r.hung}); ` +
      (again
        ? `run again: ${again.exitCode === 0 && !again.hung ? 'passed' : 'failed'}`
        : 'not run again (KLR_TEST_RERUN_HUNG=0)'),
  );
}
for (const r of failed)
  say(`FAILED ${relative('.', r.file)} (exit ${r.exitCode ?? 'killed'}, ${r.seconds.toFixed(0)} s)`);
process.exit(failed.length > 0 ? 1 : 0);
