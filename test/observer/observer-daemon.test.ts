// The observer daemon as a real process (src/observer/main.ts) against a real dev server and worker:
// settings refused at start with one line, a followed log whose incidents are counted once — also across
// a SIGKILL in the middle of the stream — the HTTP door served by the daemon, a graceful stop on SIGTERM.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import type { DevServerHandle } from '../../src/servers/dev-server.js';
import { torchOutOfMemory } from '../../sim/lib/vllm-messages.js';
import { REPO_ROOT } from '../support/heal-stack.js';
import { OBSERVER_MAIN } from '../support/observer-process.js';
import {
  queryState,
  startObserverServer,
  startWorkerProcess,
  waitFor,
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

function runDaemon(env: Record<string, string>) {
  return execa(process.execPath, ['--import', 'tsx', OBSERVER_MAIN], {
    cwd: REPO_ROOT,
    // Its /metrics off: the default port (9466) is not this test's to take while other files run beside it.
    env: { KLR_HOST: host, KLR_DATA_DIR: dir, KLR_OBSERVER_METRICS_ADDR: 'off', ...env },
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

const GiB = 1024 ** 3;
const logBase = Date.now() - 60 * 60_000;

/**
 * Incident `i` as vLLM V1 prints it under `docker logs --timestamps`: the engine's fatal error, the
 * traceback ending in PyTorch's OOM, then a normal line. Incidents are two minutes apart in log time,
 * so each is its own event.
 */
function incidentBlock(i: number): string {
  const t = new Date(logBase + i * 120_000).toISOString();
  const oom = torchOutOfMemory({
    gpuIndex: 0,
    triedBytes: (1 + i) * 64 * 1024 ** 2,
    totalBytes: 79.19 * GiB,
    freeBytes: 0.5 * GiB,
    otherProcesses: [],
    processInUseBytes: 78 * GiB,
    allocatedBytes: 75 * GiB,
    privatePoolBytes: 0,
    reservedUnallocatedBytes: 1 * GiB,
  });
  return [
    `${t} ERROR 11-28 03:00:00 [core.py:700] EngineCore encountered a fatal error.`,
    `${t} Traceback (most recent call last):`,
    `${t}   File "/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py", line 691, in run_engine_core`,
    `${t} torch.OutOfMemoryError: ${oom}`,
    `${t} INFO 11-28 03:00:00 [loggers.py:123] Engine 000: Avg prompt throughput: 0.0 tokens/s`,
    '',
  ].join('\n');
}

async function countNow(): Promise<number> {
  try {
    return (await queryState(server.address, host)).count24h;
  } catch {
    return 0; // no workflow yet
  }
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
  assert.equal(
    result.exitCode,
    0,
    `${String(result.signal)} ${String(result.stderr)} ${JSON.stringify(daemon.lines.slice(-3))}`,
  );
  assert.ok(daemon.lines.some((l) => l.msg === 'observer stopped'));
  assert.ok(!JSON.stringify(daemon.lines).includes(TOKEN), 'the token is never logged');
});

test('a followed log: each incident counted once, also across a SIGKILL in the middle of the stream', async () => {
  const logPath = join(dir, 'vllm.log');
  await writeFile(logPath, '');
  for (let i = 0; i < 5; i++) await appendFile(logPath, incidentBlock(i));
  const base = await countNow();
  const env = { KLR_OBSERVER_FILE: logPath, KLR_OBSERVER_FROM_START: '1' };
  let daemon = await startDaemon(env);
  try {
    await waitFor('the first five incidents counted', async () => (await countNow()) === base + 5);

    // More incidents arrive; the observer is killed while it reads and delivers them.
    for (let i = 5; i < 10; i++) {
      await appendFile(logPath, incidentBlock(i));
      if (i === 7) await daemon.stop('SIGKILL');
      else await delay(50);
    }
    const killed = await daemon.proc;
    assert.equal(killed.signal, 'SIGKILL');
    // And more while it is down.
    for (let i = 10; i < 14; i++) await appendFile(logPath, incidentBlock(i));

    daemon = await startDaemon(env);
    // A last incident after the restart: once it is counted, everything before it has been read again.
    await appendFile(logPath, incidentBlock(14));
    // Its OOM is line 74 (five lines per incident); it is logged once the delivery has accepted it, and
    // symptoms arrive in order, so once it is counted every re-read incident before it has arrived too.
    await waitFor('the last incident read', async () =>
      daemon.lines.some((l) => l.msg === 'incident' && l.line === 74),
    );
    await waitFor('the last incident counted', async () => (await countNow()) >= base + 15);
    const state = await queryState(server.address, host);
    assert.equal(state.count24h, base + 15, 'every incident once: none lost, none counted twice');
    const incidents = daemon.lines.filter((l) => l.msg === 'incident');
    assert.ok(
      incidents.every((l) => l.family === 'torch_oom'),
      JSON.stringify(incidents.slice(0, 3)),
    );
  } finally {
    await daemon.stop('SIGTERM');
  }
});
