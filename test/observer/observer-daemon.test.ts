// The observer daemon as a real process (src/observer/main.ts) against a real dev server and worker:
// settings refused at start with one line, the HTTP door served by the daemon, a graceful stop on SIGTERM.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import type { DevServerHandle } from '../../src/servers/dev-server.js';
import { REPO_ROOT } from '../support/heal-stack.js';
import {
  queryState,
  startObserverServer,
  startWorkerProcess,
  type WorkerProcess,
} from '../support/observer-stack.js';

const host = `daemon-${process.pid}`;
const TOKEN = 'daemon-test-token-0123456789';
let dir: string;
let server: DevServerHandle;
let worker: WorkerProcess;

interface Daemon {
  proc: ResultPromise;
  lines: Record<string, unknown>[];
  started: Record<string, unknown>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const MAIN = join(REPO_ROOT, 'src', 'observer', 'main.ts');

function runDaemon(env: Record<string, string>) {
  return execa(process.execPath, ['--import', 'tsx', MAIN], {
    cwd: REPO_ROOT,
    env: { KLR_HOST: host, KLR_DATA_DIR: dir, ...env },
    extendEnv: false,
    stdout: 'pipe',
    stderr: 'pipe',
    reject: false,
  });
}

/** Starts the daemon and resolves once it logged that it started (pino JSON lines on stdout). */
async function startDaemon(env: Record<string, string>): Promise<Daemon> {
  const proc = runDaemon({ TEMPORAL_ADDRESS: server.address, ...env });
  const lines: Record<string, unknown>[] = [];
  let buffer = '';
  const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
    proc.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          lines.push(parsed);
          if (parsed.msg === 'observer started') resolve(parsed);
        } catch {
          // not a log line
        }
      }
    });
    void proc.then((r) =>
      reject(new Error(`observer exited early (${String(r.exitCode ?? r.signal)}): ${String(r.stderr)}`)),
    );
  });
  let stopped = false;
  return {
    proc,
    lines,
    started,
    async stop(signal = 'SIGTERM') {
      if (stopped) return;
      stopped = true;
      proc.kill(signal);
      const done = await Promise.race([proc.then(() => true), delay(30_000, false, { ref: false })]);
      if (!done) {
        proc.kill('SIGKILL');
        await proc;
      }
    },
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-daemon-'));
  server = await startObserverServer(dir);
  worker = await startWorkerProcess({ address: server.address, host, dataDir: dir });
});

after(async () => {
  await worker?.stop();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('bad settings stop the daemon at start with one line naming the variable', async () => {
  const noToken = await runDaemon({ KLR_HTTP_DOOR: '1' });
  assert.equal(noToken.exitCode, 2);
  assert.match(
    String(noToken.stderr).trim(),
    /^invalid setting KLR_HTTP_DOOR_TOKEN="": expected a bearer token of at least 16 characters/,
  );
  assert.equal(String(noToken.stderr).trim().split('\n').length, 1);
  const shortToken = await runDaemon({ KLR_HTTP_DOOR: '1', KLR_HTTP_DOOR_TOKEN: 'short-secret' });
  assert.equal(shortToken.exitCode, 2);
  assert.doesNotMatch(String(shortToken.stderr), /short-secret/);
  const nothing = await runDaemon({});
  assert.equal(nothing.exitCode, 2);
  assert.match(String(nothing.stderr), /nothing to observe/);
});

test('the daemon serves the HTTP door on 127.0.0.1 into the workflow, and stops cleanly on SIGTERM', async () => {
  const daemon = await startDaemon({
    KLR_HTTP_DOOR: '1',
    KLR_HTTP_DOOR_TOKEN: TOKEN,
    KLR_HTTP_DOOR_ADDR: '127.0.0.1:0',
  });
  try {
    const url = String(daemon.started.httpDoor);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${url}/v1/symptoms`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'vllm_oom', id: 'daemon-http-1', details: { allocMb: 256 } }),
    });
    assert.equal(res.status, 202, await res.clone().text());
    assert.equal(((await res.json()) as { count: number }).count, 1);
    assert.equal((await queryState(server.address, host)).count24h, 1);
  } finally {
    await daemon.stop('SIGTERM');
  }
  const result = await daemon.proc;
  assert.equal(result.exitCode, 0, `${String(result.signal)} ${String(result.stderr)} ${JSON.stringify(daemon.lines.slice(-3))}`);
  assert.ok(daemon.lines.some((l) => l.msg === 'observer stopped'));
  assert.ok(!JSON.stringify(daemon.lines).includes(TOKEN), 'the token is never logged');
});
