// Runs the Temporal CLI dev server (`temporal server start-dev`) as a child process and waits until
// its namespace and search attributes are usable, so callers can connect straight away.
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import { LineTail, stripAnsi, type Log } from './install.js';
import { resolveTemporalCli } from './temporal-cli.js';

export type SearchAttributeTypeName =
  'Keyword' | 'Text' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList';

export interface DevServerOptions {
  /** SQLite file for persistence; omitted = in-memory (state is lost on stop). */
  dbFile?: string;
  /** gRPC port on 127.0.0.1; 0/undefined = a free one. */
  port?: number;
  /** Web UI port; setting it turns the UI on. */
  uiPort?: number;
  /** Web UI on/off; default: on only when `uiPort` is given. */
  ui?: boolean;
  /** Namespace to create and wait for; default 'default'. */
  namespace?: string;
  /** Custom search attributes to register on `namespace`. */
  searchAttributes?: Record<string, SearchAttributeTypeName>;
  /** Append the server's stdout/stderr here. */
  logFile?: string;
  /** Progress and server output lines. */
  log?: Log;
  /** How long to wait for the server to come up; default 60 s. */
  startTimeoutMs?: number;
  /** Serve the server's own Prometheus metrics on 127.0.0.1:this port (benchmarks count its requests). */
  metricsPort?: number;
}

export interface DevServerHandle {
  /** `127.0.0.1:port` of the gRPC frontend. */
  address: string;
  uiUrl?: string;
  pid: number;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the process is gone. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const STOP_GRACE_MS = 10_000;
const PORT_RETRIES = 3;

// Values of temporal.api.enums.v1.IndexedValueType (kept here so we need not depend on @temporalio/proto).
const INDEXED_VALUE_TYPE: Record<SearchAttributeTypeName, number> = {
  Text: 1,
  Keyword: 2,
  Int: 3,
  Double: 4,
  Bool: 5,
  Datetime: 6,
  KeywordList: 7,
};

/** A port that was free on 127.0.0.1 a moment ago (the OS picks it). */
export function pickFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not read the picked port'))));
    });
  });
}

/** Whether nothing listens on 127.0.0.1:`port` (we can bind it ourselves). */
function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

// Without this, readiness polling could mistake another server on that port for ours.
async function assertPortsFree(opts: DevServerOptions): Promise<void> {
  for (const [what, port] of [
    ['port', opts.port],
    ['uiPort', opts.uiPort],
  ] as const) {
    if (port && !(await portIsFree(port))) {
      throw new Error(
        `${HOST}:${port} (${what}) is already in use. Stop what listens there, or omit ${what} to get a free port.`,
      );
    }
  }
}

/** Starts `temporal server start-dev` and resolves once it serves `namespace`. */
export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServerHandle> {
  const cli = await resolveTemporalCli(opts.log);
  await assertPortsFree(opts);
  if (opts.dbFile) await mkdir(dirname(opts.dbFile), { recursive: true });
  const portsArePicked = !opts.port && !opts.uiPort;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(cli, opts);
    } catch (err) {
      // A port we picked can be taken by someone else before the server binds it: pick again.
      if (!(err instanceof PortTakenError) || !portsArePicked || attempt >= PORT_RETRIES) throw err;
      opts.log?.(`dev server: a picked port was taken meanwhile, retrying (${err.message.split('\n')[0]})`);
    }
  }
}

class PortTakenError extends Error {}
/** A start-up problem that waiting longer will not fix. */
class FatalStartError extends Error {}

interface Launch {
  args: string[];
  address: string;
  uiUrl?: string;
}

async function planLaunch(opts: DevServerOptions): Promise<Launch> {
  const port = opts.port || (await pickFreePort());
  const ui = opts.ui ?? opts.uiPort !== undefined;
  const uiPort = ui ? opts.uiPort || (await pickFreePort()) : undefined;
  const namespace = opts.namespace ?? 'default';
  const args = ['server', 'start-dev', '--ip', HOST, '--port', String(port)];
  args.push(...(uiPort ? ['--ui-port', String(uiPort)] : ['--headless']));
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  if (opts.metricsPort) args.push('--metrics-port', String(opts.metricsPort));
  // 'default' always exists; naming it again is harmless but noisy.
  if (namespace !== 'default') args.push('--namespace', namespace);
  for (const [name, type] of Object.entries(opts.searchAttributes ?? {})) {
    args.push('--search-attribute', `${name}=${type}`);
  }
  args.push('--log-level', 'warn');
  return { args, address: `${HOST}:${port}`, uiUrl: uiPort ? `http://${HOST}:${uiPort}` : undefined };
}

/** The child process, its output tail and a promise that settles when it exits. */
interface Running {
  subprocess: ResultPromise<typeof SPAWN_OPTIONS>;
  tail: LineTail;
  exited: Promise<void>;
}

const SPAWN_OPTIONS = {
  stdin: 'ignore',
  all: true,
  buffer: false, // a long-lived server: never accumulate its output in memory
  reject: false,
  forceKillAfterDelay: false, // stop() handles escalation itself
} as const;

function spawnServer(cli: string, args: string[], opts: DevServerOptions): Running {
  const subprocess = execa(cli, args, SPAWN_OPTIONS);
  const tail = new LineTail(60);
  const file = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  const pumped = pumpLines(subprocess, tail, file, opts.log);
  const exited = Promise.all([subprocess, pumped]).then(
    () => new Promise<void>((resolve) => (file ? file.end(resolve) : resolve())),
  );
  return { subprocess, tail, exited };
}

async function pumpLines(
  subprocess: Running['subprocess'],
  tail: LineTail,
  file: WriteStream | undefined,
  log: Log | undefined,
): Promise<void> {
  try {
    for await (const raw of subprocess.iterable({ from: 'all' })) {
      const line = stripAnsi(raw).trimEnd();
      file?.write(`${line}\n`);
      if (!line) continue;
      tail.push(line);
      log?.(`temporal: ${line}`);
    }
  } catch {
    // The iterable rejects when the process fails; its exit is reported through `exited`.
  }
}

async function startOnce(cli: string, opts: DevServerOptions): Promise<DevServerHandle> {
  const launch = await planLaunch(opts);
  opts.log?.(`starting dev server: ${cli} ${launch.args.join(' ')}`);
  const running = spawnServer(cli, launch.args, opts);
  const pid = running.subprocess.pid;
  const stop = once(() => stopProcess(running));
  try {
    if (pid === undefined) throw new Error(`could not start ${cli}`);
    await waitUntilReady(launch.address, opts, running);
    return { address: launch.address, uiUrl: launch.uiUrl, pid, stop };
  } catch (err) {
    await stop(); // never leave a half-started server behind
    throw err;
  }
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let promise: Promise<void> | undefined;
  return () => (promise ??= fn());
}

async function stopProcess({ subprocess, exited }: Running): Promise<void> {
  if (subprocess.exitCode === null && subprocess.signalCode === null) {
    subprocess.kill('SIGTERM');
    // Unref'd: once the server is gone, this timer must not hold the process for the rest of the 10 s.
    const timer = sleep(STOP_GRACE_MS, 'timeout' as const, { ref: false });
    if ((await Promise.race([exited, timer])) === 'timeout') subprocess.kill('SIGKILL');
  }
  await exited;
}

/** Polls until the namespace answers and the search attributes exist, or the server dies. */
async function waitUntilReady(address: string, opts: DevServerOptions, running: Running): Promise<void> {
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let exitedEarly = false;
  void running.exited.then(() => (exitedEarly = true));
  let lastError = 'no answer yet';
  while (!exitedEarly) {
    if (Date.now() > deadline) {
      throw new Error(
        `Temporal dev server at ${address} did not become ready within ${timeoutMs / 1000} s ` +
          `(last error: ${lastError}). Server output:\n${running.tail.toString()}`,
      );
    }
    try {
      if (await tcpAccepts(address)) {
        await checkNamespace(address, opts);
        if (!exitedEarly) return; // the answer came from our process, not a stray one
      }
    } catch (err) {
      if (err instanceof FatalStartError) throw err;
      lastError = (err as Error).message;
    }
    await sleep(200);
  }
  const { exitCode, signalCode } = running.subprocess;
  const output = running.tail.toString();
  const message =
    `Temporal dev server exited before it was ready (exit code ${exitCode ?? signalCode}). ` +
    `Server output:\n${output}`;
  throw /address already in use|port .* (in use|not free)|can't (set|use).*port/i.test(output)
    ? new PortTakenError(message)
    : new Error(message);
}

function tcpAccepts(address: string): Promise<boolean> {
  const [host = HOST, port = '0'] = address.split(':');
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port: Number(port) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function checkNamespace(address: string, opts: DevServerOptions): Promise<void> {
  const namespace = opts.namespace ?? 'default';
  const connection = await Connection.connect({ address, connectTimeout: '2s' });
  try {
    const inTwoSeconds = Date.now() + 2_000;
    await connection.withDeadline(inTwoSeconds, () =>
      connection.workflowService.describeNamespace({ namespace }),
    );
    await ensureSearchAttributes(connection, namespace, opts.searchAttributes ?? {});
  } finally {
    await connection.close();
  }
}

/**
 * The CLI only registers `--search-attribute`s when it creates a namespace, so on an existing
 * SQLite file new ones would be silently missing: add whatever is not there yet.
 */
async function ensureSearchAttributes(
  connection: Connection,
  namespace: string,
  wanted: Record<string, SearchAttributeTypeName>,
): Promise<void> {
  if (Object.keys(wanted).length === 0) return;
  const { customAttributes = {} } = await connection.operatorService.listSearchAttributes({ namespace });
  const missing: Record<string, number> = {};
  for (const [name, type] of Object.entries(wanted)) {
    const existing = customAttributes[name];
    if (existing === undefined || existing === null) missing[name] = INDEXED_VALUE_TYPE[type];
    else if (Number(existing) !== INDEXED_VALUE_TYPE[type]) {
      const had = Object.entries(INDEXED_VALUE_TYPE).find(([, v]) => v === Number(existing))?.[0] ?? existing;
      throw new FatalStartError(
        `Search attribute ${name} is already registered in namespace ${namespace} as ${had}, not ${type}. ` +
          'Use another name, or a fresh database file.',
      );
    }
  }
  if (Object.keys(missing).length > 0) {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
  }
}
