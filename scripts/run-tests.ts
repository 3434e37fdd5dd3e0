// The test runner behind `npm test`: provisions the Temporal servers once (so test files don't race to
// build them), then runs every test file under Node's built-in runner, one process group per file, a
// few at a time. Nothing may hang CI: a file that reports nothing for too long, or runs past its
// deadline, is killed with all it started, and what it had reported is printed (the hung test is the one
// after its last line; Node 20's --test-timeout cannot say, it times the whole file). A file that hung is
// run once more on its own, and said so: the Java time-skipping server sometimes stops skipping time with nothing pending, which is
// the server's, not the code's (docs/testing.md, "Hangs"); a file that hangs twice, or fails, fails.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { cacheDir } from '../src/servers/cache.js';
import { isProcessAlive } from '../src/system/process-alive.js';
import { ensureTestServer } from '../src/servers/test-server.js';
import { provisionOsDependencies } from './os-deps.js';
import { buildSimulator } from './build-sim.js';
import { resolveTemporalCli } from '../src/servers/temporal-cli.js';
import {
  DEFAULT_METRICS_ADDR,
  DEFAULT_SDK_METRICS_ADDR,
  parseListenAddress,
} from '../src/config/metrics-settings.js';
import { DEFAULT_OBSERVER_METRICS_ADDR } from '../src/observer/observer-settings.js';

/**
 * The test files that use the test run's build: those that name KLR_TEST_BUILD or
 * KLR_TEST_WORKFLOW_BUNDLE, or name (import or start) a support module that does, however deep.
 */
async function buildUsers(testFiles: readonly string[]): Promise<Set<string>> {
  const support = join('test', 'support');
  const texts = new Map<string, string>();
  for (const name of await readdir(support))
    if (name.endsWith('.ts')) texts.set(name.slice(0, -3), await readFile(join(support, name), 'utf8'));
  const names = (text: string, users: Set<string>) =>
    /KLR_TEST_(BUILD|WORKFLOW_BUNDLE)/.test(text) ||
    [...users].some((u) => text.includes(`${u}.js'`) || text.includes(`${u}.ts'`));
  const users = new Set<string>();
  for (let grew = true; grew;) {
    grew = false;
    for (const [name, text] of texts)
      if (!users.has(name) && names(text, users)) {
        users.add(name);
        grew = true;
      }
  }
  const found = new Set<string>();
  for (const f of testFiles) if (names(await readFile(f, 'utf8'), users)) found.add(f);
  return found;
}

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
// `--checks` (npm test): the type check and the lint run beside the test files instead of before them, their
// output printed when they end; either failing fails the run.
const withChecks = args.includes('--checks');
const filters = args.filter((a) => a !== '--chaos' && a !== '--checks');
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
/** A switch: 1 on, 0 off, `fallback` when unset; anything else is refused. */
function flag(name: string, fallback: boolean): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw !== '0' && raw !== '1') {
    console.error(`${name}=${raw}: expected 1 (on) or 0 (off)`);
    process.exit(2);
  }
  return raw === '1';
}
const concurrency = seconds('KLR_TEST_CONCURRENCY', 2) || 1;
// Files that mostly wait in real time — for a maintenance window to open, through a minute without
// Temporal — and use little CPU meanwhile: they run in lanes of their own beside the others, so that
// their waits overlap the CPU-bound files instead of holding one of the CPU's lanes (0: none).
const waitLanes = seconds('KLR_TEST_WAIT_LANES', 2);
const WAITING = [
  'e2e/demo',
  'e2e/canary-failures',
  'e2e/heal-cycle',
  'e2e/multi-service',
  'e2e/prometheus',
  'observer/delivery',
];
const waits = (f: string) => WAITING.some((w) => relative('test', f).split(sep).join('/') === `${w}.test.ts`);
// The longest test of npm test takes about 2.5 minutes on 2 cores, the longest file about 4; a chaos
// file is one long test (the random schedules: 4-9 minutes, a line per schedule) with its own stall
// handling.
const silenceS = seconds('KLR_TEST_SILENCE_S', chaos ? 600 : 300);
const fileTimeoutS = seconds('KLR_TEST_FILE_TIMEOUT_S', chaos ? 1500 : 900);
const rerunHung = flag('KLR_TEST_RERUN_HUNG', true);
// `KLR_TEST_CPU=1`: each file runs under GNU time (/usr/bin/time), and the summary gives the CPU seconds
// each took (its process and what it waited for), the figure that counts on two cores.
const measureCpu = flag('KLR_TEST_CPU', false);
if (measureCpu && !existsSync('/usr/bin/time')) {
  console.error('KLR_TEST_CPU=1 needs GNU time at /usr/bin/time (Debian: apt-get install time)');
  process.exit(2);
}
const CPU_MARK = '# klr-cpu ';

const say = (m: string) => console.log(`# ${m}`);
const running = new Set<ChildProcess>();
const started = Date.now();
const machineCpuAtStart = machineCpuSeconds();
provisionOsDependencies(files, say);
const cli = await resolveTemporalCli(say);
const testServer = await ensureTestServer(say);
say(`servers ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${cli}, ${testServer}`);

// The default ports of the worker's, the SDK's and the observer's /metrics are the runner's for the whole
// run: a test that starts a worker or an observer without choosing its own ports then fails every time,
// not only when a file running beside it took the port first (the observer daemon's test and the demo's
// observer, both on 9466, failed CI that way). Taken already (a stack of the developer's own): held too.
for (const text of [DEFAULT_METRICS_ADDR, DEFAULT_SDK_METRICS_ADDR, DEFAULT_OBSERVER_METRICS_ADDR]) {
  const { host, port } = parseListenAddress(text)!;
  await new Promise<void>((done) => {
    const holder = createServer().once('error', () => done());
    holder.listen(port, host, () => done());
    holder.unref();
  });
}

// The build (`npm run build` into a folder of its own: the JavaScript production runs and the workflow
// bundle; and the simulator, scripts/build-sim.ts), made once here while the first files run, for the
// files that would otherwise start every healctl, simulator and supervisor through tsx (two to three
// times the CPU) or bundle the workflows themselves, in-process or in each worker they start (about
// 10 CPU-s each): they get $KLR_TEST_BUILD and $KLR_TEST_WORKFLOW_BUNDLE (test/support/: programs,
// test-env, heal-stack, scripted-worker) and wait for it. Inside node_modules, so that the built files
// resolve the installed packages as dist/ does. A failed build is said, and those files fall back to the
// sources.
const buildDir = resolve('node_modules', '.cache', `klr-test-build-${process.pid}`);
// The builds of runs killed before they could remove theirs (their runner is gone).
for (const name of await readdir(dirname(buildDir)).catch(() => [])) {
  const pid = /^klr-test-build-(\d+)$/.exec(name)?.[1];
  if (pid !== undefined && !isProcessAlive(Number(pid)))
    rmSync(join(dirname(buildDir), name), { recursive: true, force: true });
}
// KLR_TEST_USE_BUILD=0: no build, every file on the sources (the baseline for KLR_TEST_CPU's figures).
const needsBuild = flag('KLR_TEST_USE_BUILD', true) ? await buildUsers(files) : new Set<string>();
let built = false;
if (needsBuild.size > 0) say(`${needsBuild.size} of ${files.length} files use the run's build`);
async function buildForTests(): Promise<boolean> {
  const t0 = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/build.ts', '--out-dir', buildDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.add(child);
  const out: string[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d.toString()));
  child.stderr.on('data', (d: Buffer) => out.push(d.toString()));
  const code = await new Promise<number | null>((resolveExit) => child.on('close', resolveExit));
  running.delete(child);
  let failure = code === 0 ? null : `scripts/build.ts, exit ${code ?? 'killed'}:\n${out.join('')}`;
  // The simulator too (scripts/build-sim.ts), into the same folder: <build>/sim/js/*.js.
  if (failure === null)
    await buildSimulator(process.cwd(), join(buildDir, 'sim')).catch((err: Error) => {
      failure = `the simulator: ${err.message}`;
    });
  // The files that wanted it then run the sources through tsx and bundle the workflows themselves.
  if (failure !== null) say(`the build for the tests failed, the files run the sources: ${failure}`);
  else say(`built ${buildDir} for the tests in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return failure === null;
}
const buildReady: Promise<void> =
  needsBuild.size === 0
    ? Promise.resolve()
    : buildForTests().then((ok) => {
        built = ok;
      });
const removeBuild = () => rmSync(buildDir, { recursive: true, force: true });

interface FileRun {
  readonly file: string;
  readonly exitCode: number | null;
  /** Why it was killed: silent too long, or past its deadline. */
  readonly hung: string | null;
  readonly counts: Readonly<Record<string, number>>;
  readonly seconds: number;
  /** CPU seconds (user + system) of the file and the processes it waited for, with KLR_TEST_CPU=1. */
  readonly cpu: number | null;
}

// Streamed when one file runs alone; otherwise each file's output is printed whole when it ends, so
// that two files' lines do not interleave.
const stream = files.length === 1 || (concurrency === 1 && waitLanes === 0);

async function runFile(file: string): Promise<FileRun> {
  if (needsBuild.has(file)) await buildReady;
  const t0 = Date.now();
  // No --test-force-exit: on Node 20 it ended a file between its describe blocks, leaving tests unrun
  // with a passing summary (bad-input.test.ts: 73 of 92). A file kept alive by a leaked handle is
  // caught by the silence deadline instead.
  // The file itself, not `--test <file>`: that starts a second Node (with tsx) to run the file in, ~0.15
  // CPU-s a file for nothing here, where the runner already gives each file a process of its own. Run
  // directly, node:test reports the same way and exits 1 when a test fails.
  const nodeArgs = ['--import', 'tsx', '--test-reporter=spec'];
  const command = measureCpu
    ? ['/usr/bin/time', '-f', `${CPU_MARK}%U %S`, process.execPath, ...nodeArgs, file]
    : [process.execPath, ...nodeArgs, file];
  const child = spawn(command[0]!, command.slice(1), {
    // Its own process group, so that the deadline ends the servers and workers its tests started too.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      TEMPORAL_CLI: cli,
      KLR_TEST_SERVER: testServer,
      ...(built
        ? { KLR_TEST_BUILD: buildDir, KLR_TEST_WORKFLOW_BUNDLE: join(buildDir, 'workflow-bundle.js') }
        : {}),
    },
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
        cpu: cpuSeconds(text),
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

/**
 * CPU seconds the whole machine has spent (user, nice, system, irq, softirq: /proc/stat's first line), or
 * null where there is no /proc: counts what each file's GNU time misses, the processes a file starts and
 * kills rather than waits for (servers, workers, simulated services).
 */
function machineCpuSeconds(): number | null {
  try {
    const [user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8')
      .split('\n', 1)[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    return (user! + nice! + system! + irq! + softirq!) / 100;
  } catch {
    return null;
  }
}

/** GNU time's line for the file (KLR_TEST_CPU=1): user + system seconds. */
function cpuSeconds(text: string): number | null {
  const at = text.lastIndexOf(CPU_MARK);
  if (at < 0) return null;
  const [user, system] = text
    .slice(at + CPU_MARK.length)
    .split(/\s+/, 2)
    .map(Number);
  return Number.isFinite(user) && Number.isFinite(system) ? user! + system! : null;
}

/** Seconds each lane spent running files: the CPU's lanes, then the waiting files' lanes. */
const laneBusy: number[] = [];

/**
 * Runs `queue` in order: `concurrency` lanes take the files that do not mostly wait, `waitLanes` more
 * lanes take those that do; a CPU lane with nothing else left takes a waiting file too, and once no
 * waiting file is left the first waiting lane takes the others (the run's tail: one more file beside
 * the CPU's lanes, to fill the waits inside them).
 */
/** A check (type check, lint) run once beside the files: its output printed when it ends; true: it passed. */
async function runCheck(name: string, file: string, checkArgs: string[]): Promise<boolean> {
  const t0 = Date.now();
  const child = spawn(file, checkArgs, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  running.add(child);
  const out: string[] = [];
  child.stdout?.on('data', (d: Buffer) => out.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => out.push(d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  running.delete(child);
  const text = out.join('').trim();
  if (text) console.log(text);
  say(
    `${name} ${code === 0 ? 'passed' : `FAILED (exit ${code ?? 'killed'})`} in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  return code === 0;
}

async function runAll(queue: string[]): Promise<FileRun[]> {
  const results: FileRun[] = [];
  const take = (waitingOnly: boolean) => {
    let at = waitingOnly ? queue.findIndex(waits) : queue.findIndex((f) => !waits(f));
    if (at < 0 && !waitingOnly) at = queue.findIndex(waits);
    return at < 0 ? undefined : queue.splice(at, 1)[0];
  };
  const lane = async (index: number, waitingOnly: boolean, thenAny = false): Promise<void> => {
    const next = () => take(waitingOnly) ?? (thenAny ? take(false) : undefined);
    for (let file = next(); file !== undefined; file = next()) {
      const run = await runFile(file);
      results.push(run);
      laneBusy[index] = (laneBusy[index] ?? 0) + run.seconds;
    }
  };
  const cpuLanes = Math.min(concurrency, queue.length);
  const extra = Math.min(waitLanes, queue.filter(waits).length);
  await Promise.all([
    ...Array.from({ length: cpuLanes }, (_, i) => lane(i, false)),
    ...Array.from({ length: extra }, (_, i) => lane(cpuLanes + i, true, i === 0)),
  ]);
  return results;
}

// How long each file took the last time it passed on this machine, kept beside the servers' cache: the
// longest files start first, so that the run does not end with one lane on a long file while the others
// idle. A file never measured here is guessed by its folder (the end-to-end ones wait for real
// maintenance windows and restarts, a minute or two each).
const TIMES_PATH = join(cacheDir(), 'test-times.json');

async function readTimes(): Promise<Record<string, number>> {
  try {
    const parsed: unknown = JSON.parse(await readFile(TIMES_PATH, 'utf8'));
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, number>) : {};
  } catch {
    return {}; // none yet, or unreadable: the guesses below
  }
}

async function writeTimes(times: Record<string, number>): Promise<void> {
  try {
    await mkdir(dirname(TIMES_PATH), { recursive: true });
    const tmp = `${TIMES_PATH}.${process.pid}`;
    await writeFile(tmp, `${JSON.stringify(times, null, 2)}\n`);
    await rename(tmp, TIMES_PATH);
  } catch (err) {
    say(`could not record the files' durations in ${TIMES_PATH}: ${(err as Error).message}`);
  }
}

const key = (f: string) => relative('.', f).split(sep).join('/');
const guess = (f: string) =>
  /[/\\]e2e[/\\]/.test(f) ? 90 : /[/\\](adversarial|observer|workflows|client)[/\\]/.test(f) ? 15 : 3;

for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    for (const child of running) killGroup(child);
    removeBuild();
    process.exit(130);
  });

const times = await readTimes();
const expected = (f: string) => {
  const last = times[key(f)];
  return typeof last === 'number' && Number.isFinite(last) ? last : guess(f);
};
const checks = withChecks
  ? [
      // What `npm run typecheck` and `npm run lint` check, but the type check and ESLint share one TypeScript
      // program (scripts/check.ts): ~17 CPU-s less than building it twice.
      runCheck('type check and ESLint', process.execPath, ['--import', 'tsx', 'scripts/check.ts']),
      runCheck('prettier', join('node_modules', '.bin', 'prettier'), ['--check', '.']),
    ]
  : [];
const first = await runAll([...files].sort((a, b) => expected(b) - expected(a) || a.localeCompare(b)));
const hung = first.filter((r) => r.hung);
const reruns: FileRun[] = [];
if (rerunHung && hung.length > 0) {
  say(`hung, run once more on their own: ${hung.map((r) => relative('.', r.file)).join(', ')}`);
  for (const r of hung) reruns.push(...(await runAll([r.file])));
}

const final = new Map(first.map((r) => [r.file, r]));
for (const r of reruns) final.set(r.file, r);
for (const r of final.values()) if (r.exitCode === 0 && !r.hung) times[key(r.file)] = Math.round(r.seconds);
await writeTimes(times);
const total: Record<string, number> = {};
for (const r of final.values()) for (const [k, v] of Object.entries(r.counts)) total[k] = (total[k] ?? 0) + v;
const failed = [...final.values()].filter((r) => r.exitCode !== 0 || r.hung);
const checksFailed = (await Promise.all(checks)).filter((ok) => !ok).length;
say(
  `${final.size} files in ${((Date.now() - started) / 1000).toFixed(0)} s: ` +
    ['tests', 'pass', 'fail', 'cancelled', 'skipped', 'todo'].map((k) => `${k} ${total[k] ?? 0}`).join(', '),
);
if (final.size > 1) {
  const slowest = [...first].sort((a, b) => b.seconds - a.seconds).slice(0, 10);
  say(`lanes busy ${laneBusy.map((t) => `${t.toFixed(0)} s`).join(', ')}; the longest files:`);
  for (const r of slowest) say(`${r.seconds.toFixed(0).padStart(6)} s  ${relative('.', r.file)}`);
}
if (measureCpu) {
  const machine = machineCpuSeconds();
  if (machine !== null && machineCpuAtStart !== null) {
    const wall = (Date.now() - started) / 1000;
    const used = machine - machineCpuAtStart;
    say(
      `the machine: ${used.toFixed(0)} CPU-s in ${wall.toFixed(0)} s (${(used / wall).toFixed(2)} cores busy)`,
    );
  }
  const cpu = first.filter((r) => r.cpu !== null).sort((a, b) => b.cpu! - a.cpu!);
  say(`CPU seconds of the files, ${cpu.reduce((s, r) => s + r.cpu!, 0).toFixed(0)} in all; the costliest:`);
  for (const r of cpu.slice(0, 25)) say(`${r.cpu!.toFixed(0).padStart(6)} s  ${relative('.', r.file)}`);
}
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
removeBuild();
process.exit(failed.length > 0 || checksFailed > 0 ? 1 : 0);
