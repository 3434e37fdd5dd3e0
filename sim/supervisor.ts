// A tiny systemd for one service: keeps the service process (the simulated vLLM, or anything else) and
// gives the healer its restart command.
//
//   node --import tsx sim/supervisor.ts run --state-dir DIR [--restart-on-exit=never|on-failure|always]
//        [--restart-delay 1s] [--stop-timeout 10s] -- <command> [args...]
//   node --import tsx sim/supervisor.ts restart --state-dir DIR [--timeout 30s] [--json]
//   node --import tsx sim/supervisor.ts start   --state-dir DIR [--timeout 30s] [--json]
//   node --import tsx sim/supervisor.ts status  --state-dir DIR [--json]
//   node --import tsx sim/supervisor.ts stop    --state-dir DIR [--timeout 30s] [--json]
//
// `run` appends the service's stdout and stderr to DIR/service.log (with its own systemd-like lines),
// writes the service's pid to DIR/service.pid, and answers the other commands on a loopback HTTP port
// recorded, with a random token, in DIR/control.json (mode 0600). The default --restart-on-exit=never is
// systemd's Restart=no: a crashed service stays down, visible to the healer, until `restart`.
// The service runs in its own process group; stopping sends SIGTERM to the group, then SIGKILL after the
// stop timeout. SIGTERM/SIGINT to the supervisor stop the service and remove the control files.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join, resolve } from 'node:path';
import { parseDurationMs } from './lib/format.js';
import { isAlive, pruneDeadProcesses } from './lib/gpu-state.js';

type RestartPolicy = 'never' | 'on-failure' | 'always';
const POLICIES: readonly RestartPolicy[] = ['never', 'on-failure', 'always'];

interface ExitRecord {
  pid: number;
  code: number | null;
  signal: string | null;
  at: string;
}

export interface SupervisorStatus {
  supervisorPid: number;
  stateDir: string;
  command: string[];
  restartOnExit: RestartPolicy;
  running: boolean;
  pid: number | null;
  since: string | null;
  restarts: number;
  starts: number;
  lastExit: ExitRecord | null;
  startedAt: string;
}

interface ControlFile {
  pid: number;
  host: string;
  port: number;
  token: string;
  stateDir: string;
}

class UsageError extends Error {}

const USAGE = `usage:
  supervisor.ts run --state-dir DIR [--restart-on-exit=never|on-failure|always] [--restart-delay 1s] [--stop-timeout 10s] -- <command> [args...]
  supervisor.ts restart|start|stop --state-dir DIR [--timeout 30s] [--json]
  supervisor.ts status --state-dir DIR [--json]`;

// ------------------------------------------------------------------ arguments

interface Parsed {
  command: string;
  options: Map<string, string>;
  flags: Set<string>;
  rest: string[];
}

const VALUE_OPTIONS = new Set(['state-dir', 'restart-on-exit', 'restart-delay', 'stop-timeout', 'timeout']);
const FLAG_OPTIONS = new Set(['json']);

function parseArgs(argv: string[]): Parsed {
  const [command, ...args] = argv;
  if (!command || command.startsWith('-')) throw new UsageError('missing command');
  const options = new Map<string, string>();
  const flags = new Set<string>();
  let rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--') {
      rest = args.slice(i + 1);
      break;
    }
    if (!arg.startsWith('--'))
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)} (put the service command after --)`);
    const eq = arg.indexOf('=');
    const key = arg.slice(2, eq >= 0 ? eq : undefined);
    if (FLAG_OPTIONS.has(key) && eq < 0) {
      flags.add(key);
      continue;
    }
    if (!VALUE_OPTIONS.has(key)) throw new UsageError(`unknown option --${key}`);
    const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`--${key} needs a value`);
    options.set(key, value);
  }
  return { command, options, flags, rest };
}

function durationOption(p: Parsed, key: string, def: number): number {
  const raw = p.options.get(key);
  if (raw === undefined) return def;
  const ms = parseDurationMs(raw);
  if (ms === null)
    throw new UsageError(`--${key} ${JSON.stringify(raw)} is not a duration (e.g. 30s, 500ms, 2m)`);
  return ms;
}

function stateDirOption(p: Parsed): string {
  const dir = p.options.get('state-dir');
  if (!dir) throw new UsageError('--state-dir DIR is required');
  return resolve(dir);
}

const controlPath = (dir: string) => join(dir, 'control.json');
const pidPath = (dir: string) => join(dir, 'service.pid');
const logPath = (dir: string) => join(dir, 'service.log');

function writeAtomic(path: string, text: string, mode = 0o644): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

function readControl(dir: string): ControlFile | null {
  try {
    return JSON.parse(readFileSync(controlPath(dir), 'utf8')) as ControlFile;
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ the supervisor

class Supervisor {
  private child: ChildProcess | null = null;
  private since: Date | null = null;
  private restarts = 0;
  private starts = 0;
  private lastExit: ExitRecord | null = null;
  /** Children whose exit we caused: no automatic restart, no failure line. */
  private readonly intended = new WeakSet<ChildProcess>();
  private readonly exited = new WeakMap<ChildProcess, Promise<ExitRecord>>();
  private queue: Promise<unknown> = Promise.resolve();
  private restartTimer: NodeJS.Timeout | null = null;
  private server: Server | null = null;
  private closing = false;
  private readonly startedAt = new Date();
  private readonly token = randomBytes(24).toString('hex');
  private readonly logFd: number;

  constructor(
    private readonly dir: string,
    private readonly command: [string, ...string[]],
    private readonly policy: RestartPolicy,
    private readonly restartDelayMs: number,
    private readonly stopTimeoutMs: number,
  ) {
    this.logFd = openSync(logPath(dir), 'a');
  }

  /** A systemd-journal-like line in the service log. */
  private note(message: string): void {
    try {
      writeSync(this.logFd, `${new Date().toISOString()} supervisor[${process.pid}]: ${message}\n`);
    } catch {
      // the log is best effort
    }
  }

  private say(message: string): void {
    process.stdout.write(`supervisor: ${message}\n`);
  }

  status(): SupervisorStatus {
    const running = this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
    return {
      supervisorPid: process.pid,
      stateDir: this.dir,
      command: this.command,
      restartOnExit: this.policy,
      running,
      pid: running ? (this.child?.pid ?? null) : null,
      since: running && this.since ? this.since.toISOString() : null,
      restarts: this.restarts,
      starts: this.starts,
      lastExit: this.lastExit,
      startedAt: this.startedAt.toISOString(),
    };
  }

  private serialize<T>(job: () => Promise<T>): Promise<T> {
    const next = this.queue.then(job, job);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Spawns the service; resolves with its pid once the process exists. */
  private spawnService(): Promise<number> {
    const [file, ...args] = this.command;
    return new Promise((resolvePid, reject) => {
      const child = spawn(file, args, {
        stdio: ['ignore', this.logFd, this.logFd],
        detached: true, // its own process group: stop signals reach everything it starts
        env: process.env,
      });
      const exited = new Promise<ExitRecord>((done) => {
        child.once('exit', (code, signal) => {
          const record = { pid: child.pid ?? 0, code, signal, at: new Date().toISOString() };
          this.onExit(child, record);
          done(record);
        });
      });
      this.exited.set(child, exited);
      child.once('error', (e) => {
        if (child.pid === undefined) {
          this.note(`Failed to start service: ${e.message}`);
          reject(new Error(`cannot start ${file}: ${e.message}`));
        }
      });
      child.once('spawn', () => {
        const pid = child.pid ?? 0;
        this.child = child;
        this.since = new Date();
        this.starts++;
        writeAtomic(pidPath(this.dir), `${pid}\n`);
        this.note(`Started service (pid ${pid}): ${this.command.join(' ')}`);
        resolvePid(pid);
      });
    });
  }

  private onExit(child: ChildProcess, record: ExitRecord): void {
    killGroup(record.pid, 'SIGKILL', false); // anything the service left behind in its group
    if (this.child === child) {
      this.child = null;
      this.since = null;
      rmSync(pidPath(this.dir), { force: true });
    }
    this.lastExit = record;
    const how =
      record.signal !== null
        ? `code=killed, status=${signalNumber(record.signal)}/${record.signal.replace(/^SIG/, '')}`
        : `code=exited, status=${record.code ?? 0}/${record.code === 0 ? 'SUCCESS' : 'FAILURE'}`;
    this.note(`Main process exited (pid ${record.pid}), ${how}`);
    const statePath = process.env.KLR_SIM_GPU_STATE;
    if (statePath) {
      const prune = () => {
        try {
          pruneDeadProcesses(statePath);
        } catch {
          // best effort
        }
      };
      prune();
      // Its tensor-parallel workers, just killed with the group, may not be reaped yet: once more, shortly.
      setTimeout(prune, 300).unref();
    }
    if (this.intended.has(child) || this.closing) return;
    const failed = record.signal !== null || record.code !== 0;
    if (this.policy === 'always' || (this.policy === 'on-failure' && failed)) {
      this.note(`Scheduled restart in ${this.restartDelayMs} ms (Restart=${this.policy}).`);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (this.closing || this.child) return;
        void this.serialize(async () => {
          if (this.closing || this.child) return;
          this.restarts++;
          this.note(`Restarting service, restart counter is at ${this.restarts}.`);
          await this.spawnService().catch((e: Error) => this.say(e.message));
        });
      }, this.restartDelayMs);
    }
  }

  /** Stops the running service: SIGTERM to its group, SIGKILL after the grace. Null when none ran. */
  private async stopService(graceMs: number): Promise<ExitRecord | null> {
    const child = this.child;
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null)
      return null;
    this.intended.add(child);
    const pid = child.pid;
    const exited = this.exited.get(child) ?? Promise.resolve(null);
    this.note(`Stopping service (pid ${pid})...`);
    killGroup(pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
    const first = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    if (first === 'timeout') {
      this.note(`Service (pid ${pid}) did not stop within ${graceMs} ms: sending SIGKILL.`);
      killGroup(pid, 'SIGKILL');
    }
    return exited;
  }

  restart(timeoutMs: number): Promise<{ pid: number; previousPid: number | null; restarts: number }> {
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    return this.serialize(async () => {
      const previousPid = this.status().pid;
      await this.stopService(Math.max(0, Math.min(this.stopTimeoutMs, timeoutMs - 1000)));
      this.restarts++;
      this.note(`Restarting service (requested), restart counter is at ${this.restarts}.`);
      const pid = await this.spawnService();
      return { pid, previousPid, restarts: this.restarts };
    });
  }

  start(): Promise<{ pid: number; alreadyRunning: boolean }> {
    return this.serialize(async () => {
      const running = this.status();
      if (running.pid !== null) return { pid: running.pid, alreadyRunning: true };
      return { pid: await this.spawnService(), alreadyRunning: false };
    });
  }

  async run(): Promise<void> {
    const token = this.token;
    const server = createServer((req, res) => void this.handle(req, res, token));
    this.server = server;
    await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const control: ControlFile = { pid: process.pid, host: '127.0.0.1', port, token, stateDir: this.dir };
    writeAtomic(controlPath(this.dir), JSON.stringify(control, null, 2) + '\n', 0o600);
    this.note(`Supervisor started (policy Restart=${this.policy}), control on 127.0.0.1:${port}.`);
    try {
      const pid = await this.serialize(() => this.spawnService());
      this.say(`service started, pid ${pid}; log ${logPath(this.dir)}`);
    } catch (e) {
      this.say((e as Error).message);
      await this.close(1);
    }
  }

  async close(code: number): Promise<never> {
    if (!this.closing) {
      this.closing = true;
      if (this.restartTimer) clearTimeout(this.restartTimer);
      await this.serialize(() => this.stopService(this.stopTimeoutMs)).catch(() => undefined);
      this.note('Supervisor stopped.');
      rmSync(controlPath(this.dir), { force: true });
      rmSync(pidPath(this.dir), { force: true });
      this.server?.closeAllConnections();
      this.server?.close();
      closeSync(this.logFd);
    }
    process.exit(code);
  }

  /** Last resort when the supervisor itself dies: no service outlives it. */
  killChildNow(): void {
    const pid = this.child?.pid;
    if (pid !== undefined && this.child?.exitCode === null) killGroup(pid, 'SIGKILL');
  }

  private async handle(req: IncomingMessage, res: ServerResponse, token: string): Promise<void> {
    const reply = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    if (req.headers['x-supervisor-token'] !== token)
      return reply(401, { error: 'missing or wrong x-supervisor-token' });
    const body = await new Promise<string>((r) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString('utf8')));
      req.on('end', () => r(text));
    });
    let timeoutMs = 30_000;
    try {
      const o = body ? (JSON.parse(body) as { timeoutMs?: unknown }) : {};
      if (typeof o.timeoutMs === 'number' && o.timeoutMs > 0) timeoutMs = o.timeoutMs;
    } catch {
      return reply(400, { error: 'body must be JSON' });
    }
    const route = `${req.method ?? 'GET'} ${req.url ?? '/'}`;
    try {
      switch (route) {
        case 'GET /status':
          return reply(200, this.status());
        case 'POST /restart':
          return reply(200, await this.restart(timeoutMs));
        case 'POST /start':
          return reply(200, await this.start());
        case 'POST /stop': {
          const exit = await this.serialize(() => this.stopService(Math.min(this.stopTimeoutMs, timeoutMs)));
          reply(200, { stopped: true, exit });
          res.once('finish', () => void this.close(0));
          return;
        }
        default:
          return reply(404, { error: `no route ${route}` });
      }
    } catch (e) {
      return reply(500, { error: (e as Error).message });
    }
  }
}

/** Signals the service's process group; falls back to the process itself when asked (it may be a leader no more). */
function killGroup(pid: number, signal: NodeJS.Signals, fallbackToPid = true): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    if (!fallbackToPid) return;
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function signalNumber(signal: string): number {
  const numbers: Record<string, number> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGABRT: 6,
    SIGKILL: 9,
    SIGSEGV: 11,
    SIGTERM: 15,
  };
  return numbers[signal] ?? 0;
}

// ------------------------------------------------------------------ commands

async function runCommand(p: Parsed): Promise<void> {
  const dir = stateDirOption(p);
  const [file, ...args] = p.rest;
  if (file === undefined) throw new UsageError('run needs the service command after --');
  const policy = (p.options.get('restart-on-exit') ?? 'never') as RestartPolicy;
  if (!POLICIES.includes(policy)) {
    throw new UsageError(`--restart-on-exit ${JSON.stringify(policy)} is not one of ${POLICIES.join(', ')}`);
  }
  mkdirSync(dir, { recursive: true });
  const existing = readControl(dir);
  if (existing && existing.pid !== process.pid && isAlive(existing.pid)) {
    process.stderr.write(`supervisor: already running for ${dir} (pid ${existing.pid})\n`);
    process.exit(1);
  }
  const supervisor = new Supervisor(
    dir,
    [file, ...args],
    policy,
    durationOption(p, 'restart-delay', 1000),
    durationOption(p, 'stop-timeout', 10_000),
  );
  process.on('SIGTERM', () => void supervisor.close(0));
  process.on('SIGINT', () => void supervisor.close(0));
  process.on('SIGHUP', () => void supervisor.close(0));
  process.on('exit', () => supervisor.killChildNow());
  process.on('uncaughtException', (e) => {
    process.stderr.write(`supervisor: internal error: ${e.stack ?? e.message}\n`);
    supervisor.killChildNow();
    process.exit(1);
  });
  await supervisor.run();
}

async function clientCommand(p: Parsed): Promise<void> {
  const dir = stateDirOption(p);
  const timeoutMs = durationOption(p, 'timeout', 30_000);
  const control = readControl(dir);
  if (!control) {
    fail(
      `no supervisor for ${dir}: ${controlPath(dir)} not found (is "supervisor.ts run --state-dir ${dir}" running?)`,
    );
  }
  const [method, route] = p.command === 'status' ? ['GET', '/status'] : ['POST', `/${p.command}`];
  let res: Response;
  try {
    res = await fetch(`http://${control.host}:${control.port}${route}`, {
      method,
      headers: { 'x-supervisor-token': control.token, 'content-type': 'application/json' },
      body: method === 'POST' ? JSON.stringify({ timeoutMs }) : undefined,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    if (err.name === 'TimeoutError') fail(`${p.command} did not finish within ${timeoutMs} ms`);
    const why = err.cause?.code ?? err.message;
    fail(`supervisor (pid ${control.pid}) not reachable on ${control.host}:${control.port}: ${why}`);
  }
  const body = (await res.json().catch(() => ({ error: `HTTP ${res.status}` }))) as Record<string, unknown>;
  if (!res.ok)
    fail(`${p.command} failed: ${typeof body.error === 'string' ? body.error : `HTTP ${res.status}`}`);
  if (p.flags.has('json')) {
    process.stdout.write(JSON.stringify(body) + '\n');
    return;
  }
  switch (p.command) {
    case 'restart': {
      const r = body as { pid: number; previousPid: number | null; restarts: number };
      const was = r.previousPid !== null ? `(was ${r.previousPid})` : '(was not running)';
      process.stdout.write(`restarted: pid ${r.pid} ${was}, restarts ${r.restarts}\n`);
      return;
    }
    case 'start': {
      const r = body as { pid: number; alreadyRunning: boolean };
      process.stdout.write(`${r.alreadyRunning ? 'already running' : 'started'}: pid ${r.pid}\n`);
      return;
    }
    case 'stop':
      process.stdout.write('stopped\n');
      return;
    default: {
      const s = body as unknown as SupervisorStatus;
      const lines = [
        `running: ${s.running ? 'yes' : 'no'}`,
        `pid: ${s.pid ?? '-'}`,
        `since: ${s.since ?? '-'}`,
        `restarts: ${s.restarts}`,
        `restart-on-exit: ${s.restartOnExit}`,
        `last exit: ${s.lastExit ? `pid ${s.lastExit.pid} ${s.lastExit.signal ?? `code ${s.lastExit.code}`} at ${s.lastExit.at}` : '-'}`,
        `supervisor pid: ${s.supervisorPid}`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    }
  }
}

function fail(message: string): never {
  process.stderr.write(`supervisor: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let p: Parsed;
  try {
    p = parseArgs(process.argv.slice(2));
    if (p.command === 'run') return await runCommand(p);
    if (['restart', 'start', 'status', 'stop'].includes(p.command)) return await clientCommand(p);
    throw new UsageError(`unknown command ${JSON.stringify(p.command)}`);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`supervisor: ${e.message}\n${USAGE}\n`);
      process.exit(2);
    }
    throw e;
  }
}

await main();
