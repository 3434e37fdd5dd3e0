// The real servers the project installs for itself: the CLI dev server on a SQLite file (restart
// included) and the Java time-skipping test server behind its wrapper script.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { pickFreePort, startDevServer, type DevServerHandle } from '../src/servers/dev-server.js';
import { locateTemporalCli } from '../src/servers/temporal-cli.js';
import { ensureTestServer, locateTestServer } from '../src/servers/test-server.js';

const KEYWORD = 2; // temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
const BOOL = 5;

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function customAttributes(address: string): Promise<Record<string, number>> {
  const connection = await Connection.connect({ address });
  try {
    const res = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
    return Object.fromEntries(Object.entries(res.customAttributes ?? {}).map(([k, v]) => [k, Number(v)]));
  } finally {
    await connection.close();
  }
}

async function stopAndCheckGone(server: DevServerHandle): Promise<void> {
  await server.stop();
  assert.equal(isRunning(server.pid), false, `dev server pid ${server.pid} still running after stop()`);
}

test('each server at hand is found in one line that says which way it came, without a probe', async () => {
  for (const locate of [locateTemporalCli, locateTestServer]) {
    const lines: string[] = [];
    const started = performance.now();
    const got = await locate((line) => lines.push(line));
    const ms = performance.now() - started;
    console.log(`${got.line} [${ms.toFixed(1)} ms]`);
    assert.deepEqual(lines, [got.line], 'one line, the one returned');
    // Under npm test the runner passes TEMPORAL_CLI and KLR_TEST_SERVER; alone, the cached copies.
    assert.ok(['env', 'path', 'download-cache', 'build-cache'].includes(got.via), got.via);
    assert.ok(ms < 250, `${ms.toFixed(0)} ms to find a binary at hand`);
  }
});

test('dev server on a SQLite file registers search attributes and restarts on the same file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'klr-servers-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const dbFile = join(dir, 'temporal.sqlite');
  const logFile = join(dir, 'server.log');

  const first = await startDevServer({ dbFile, logFile, searchAttributes: { KlrTestHost: 'Keyword' } });
  t.after(() => first.stop());
  assert.match(first.address, /^127\.0\.0\.1:\d+$/);
  assert.equal(first.uiUrl, undefined, 'UI is off unless asked for');
  assert.equal((await customAttributes(first.address)).KlrTestHost, KEYWORD);
  await stopAndCheckGone(first);

  // Same file, same attribute (already stored) plus a new one the CLI would not add on its own.
  const second = await startDevServer({
    dbFile,
    logFile,
    searchAttributes: { KlrTestHost: 'Keyword', KlrTestArmed: 'Bool' },
  });
  t.after(() => second.stop());
  const attributes = await customAttributes(second.address);
  assert.equal(attributes.KlrTestHost, KEYWORD);
  assert.equal(attributes.KlrTestArmed, BOOL);
  await stopAndCheckGone(second);

  // An attribute stored with another type is a clear error, and the server is stopped again.
  await assert.rejects(
    startDevServer({ dbFile, searchAttributes: { KlrTestHost: 'Int' } }),
    /KlrTestHost is already registered in namespace default as Keyword, not Int/,
  );
  const { exitCode } = await execa('pgrep', ['-f', dbFile], { reject: false });
  assert.equal(exitCode, 1, 'no server process left on that database file');
  assert.ok((await readFile(logFile, 'utf8')).length > 0, 'server output goes to logFile');
});

test('dev server serves its Web UI, and refuses a port that is in use', async () => {
  const server = await startDevServer({ ui: true });
  try {
    assert.ok(server.uiUrl, 'ui: true gives a uiUrl');
    assert.equal((await fetch(server.uiUrl)).status, 200);
    const port = Number(server.address.split(':')[1]);
    await assert.rejects(startDevServer({ port }), /already in use/);
  } finally {
    await stopAndCheckGone(server);
  }
});

test('dev server that dies while starting is reported with its output', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'klr-servers-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // A directory is not a usable SQLite file: the server exits during start-up.
  await assert.rejects(startDevServer({ dbFile: dir }), /exited before it was ready[\s\S]*database file/);
});

function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => (socket.destroy(), resolve()));
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`port ${port} not open after ${timeoutMs} ms`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

test('test server wrapper opens its port well within the SDK 5 s limit', async () => {
  const wrapper = await ensureTestServer();
  const port = await pickFreePort();
  const started = performance.now();
  const proc = execa(wrapper, [String(port)], { reject: false });
  try {
    await waitForPort(port, 5_000);
    console.log(`test server port open after ${((performance.now() - started) / 1000).toFixed(2)} s`);
  } finally {
    proc.kill('SIGTERM');
    await proc;
  }
  // exec in the wrapper: the PID we signalled was the JVM, so nothing is left behind.
  assert.equal(isRunning(proc.pid ?? -1), false);
});

test('TestWorkflowEnvironment.createTimeSkipping runs on the wrapper', async () => {
  const path = await ensureTestServer();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path } },
  });
  try {
    assert.equal(env.supportsTimeSkipping, true);
    const before = await env.currentTimeMs();
    await env.sleep('1 day'); // skipped, not waited
    assert.ok((await env.currentTimeMs()) - before >= 86_400_000);
  } finally {
    await env.teardown();
  }
});
