// runRestartCommand against real processes: the timeout bounds the whole process group (grandchildren
// included), SIGKILL follows an ignored SIGTERM, cancellation ends the group, a service the command leaves
// running in the background is left alone, and the error kinds keep their messages. Group membership is
// read from /proc (Linux). Every process started here is ended by pid or group.
//
//   node --import tsx --test test/service/restart-command.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  RESTART_KILL_GRACE_MS,
  RestartCommandError,
  runRestartCommand,
} from '../../src/service/restart-command.js';
import { assertGroupGone, killQuietly, pidsFrom, waitForMembers } from '../support/process-group.js';

/** A broken implementation must fail a test, not hang the run (the old one hung for the sleep's 13 min). */
const LIMIT = { timeout: 20_000 };

let root: string;
/** What the module's temp files are made in (TMPDIR): must be empty after every call. */
let scratch: string;
const originalTmp = process.env.TMPDIR;
const groups = new Set<number>();
const pids = new Set<number>();

before(() => {
  root = mkdtempSync(join(tmpdir(), 'klr-restart-test-'));
  scratch = join(root, 'tmp');
  mkdirSync(scratch);
  process.env.TMPDIR = scratch; // os.tmpdir() reads it on every call
});

after(() => {
  for (const pgid of groups) killQuietly(-pgid);
  for (const pid of pids) killQuietly(pid);
  if (originalTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = originalTmp;
  rmSync(root, { recursive: true, force: true });
});

const assertNoTempFiles = () =>
  assert.deepEqual(readdirSync(scratch), [], 'the output file and its directory are deleted');

const bash = (script: string): [string, ...string[]] => ['bash', '-c', script];

test(
  'at the deadline the whole group ends, grandchildren included, and the call settles',
  LIMIT,
  async () => {
    const pidFile = join(root, 'timeout.pid');
    const started = performance.now();
    const run = runRestartCommand(bash(`echo $$ > ${pidFile}; sleep 777 & sleep 778; echo never`), 1_000);
    run.catch(() => undefined);
    const [pgid] = await pidsFrom(pidFile);
    groups.add(pgid);
    await waitForMembers(pgid, /^sleep 77[78]$/, 2);

    await assert.rejects(run, (err: unknown) => {
      assert.ok(err instanceof RestartCommandError, String(err));
      assert.equal(err.kind, 'timed_out');
      assert.match(
        err.message,
        /^restart command \["bash","-c",".*sleep 777 & sleep 778; echo never"\] did not finish within 1000 ms \(KLR_SERVICE_RESTART_TIMEOUT\); its process group was stopped with SIGTERM$/,
      );
      return true;
    });
    const tookMs = performance.now() - started;
    assert.ok(tookMs >= 1_000, `not before the deadline (${Math.round(tookMs)} ms)`);
    assert.ok(
      tookMs < 1_000 + RESTART_KILL_GRACE_MS,
      `settled without waiting for the sleeps (${Math.round(tookMs)} ms)`,
    );
    await assertGroupGone(pgid);
    assertNoTempFiles();
  },
);

test('a group that ignores SIGTERM is SIGKILLed after the grace; nothing remains', LIMIT, async () => {
  const pidFile = join(root, 'stubborn.pid');
  const started = performance.now();
  const run = runRestartCommand(
    bash(`trap "" TERM; echo $$ > ${pidFile}; echo going to sleep; sleep 600 & sleep 601`),
    1_000,
  );
  run.catch(() => undefined);
  const [pgid] = await pidsFrom(pidFile);
  groups.add(pgid);
  await assert.rejects(run, (err: unknown) => {
    assert.ok(err instanceof RestartCommandError, String(err));
    assert.equal(err.kind, 'timed_out');
    assert.match(
      err.message,
      /did not finish within 1000 ms \(KLR_SERVICE_RESTART_TIMEOUT\); its process group was stopped with SIGTERM, then SIGKILL after 2000 ms: going to sleep$/,
    );
    return true;
  });
  const tookMs = performance.now() - started;
  assert.ok(tookMs >= 1_000 + RESTART_KILL_GRACE_MS, `the grace was given (${Math.round(tookMs)} ms)`);
  assert.ok(
    tookMs < 1_000 + RESTART_KILL_GRACE_MS + 1_500,
    `settled right after the SIGKILL (${Math.round(tookMs)} ms)`,
  );
  await assertGroupGone(pgid);
  assertNoTempFiles();
});

test('cancellation mid-run ends the group and rejects with the signal reason', LIMIT, async () => {
  const pidFile = join(root, 'cancel.pid');
  const controller = new AbortController();
  const run = runRestartCommand(
    bash(`echo $$ > ${pidFile}; sleep 777 & sleep 778`),
    60_000,
    controller.signal,
  );
  run.catch(() => undefined);
  const [pgid] = await pidsFrom(pidFile);
  groups.add(pgid);
  await waitForMembers(pgid, /^sleep 77[78]$/, 2);
  const reason = new Error('cancelled by the test');
  const cancelledAt = performance.now();
  controller.abort(reason);
  await assert.rejects(run, (err: unknown) => {
    assert.equal(err, reason, 'the signal reason itself');
    return true;
  });
  const stopMs = performance.now() - cancelledAt;
  assert.ok(stopMs < RESTART_KILL_GRACE_MS, `stopped ${Math.round(stopMs)} ms after the cancellation`);
  await assertGroupGone(pgid);
  assertNoTempFiles();
});

test('an already-cancelled signal runs nothing', async () => {
  const marker = join(root, 'ran');
  const reason = new Error('cancelled before');
  await assert.rejects(
    runRestartCommand(bash(`touch ${marker}`), 5_000, AbortSignal.abort(reason)),
    (err: unknown) => err === reason,
  );
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(!existsSync(marker));
  assertNoTempFiles();
});

test(
  'a command that leaves the service running in the background resolves on its own exit; the service lives',
  LIMIT,
  async () => {
    const pidFile = join(root, 'service.pid');
    const started = performance.now();
    // The background sleep ("the service") inherits stdout: with pipes, the call would wait 30 s for it.
    const { output, ms } = await runRestartCommand(
      bash(`sleep 30 & echo $! > ${pidFile}; echo started`),
      10_000,
    );
    const tookMs = performance.now() - started;
    const [service] = await pidsFrom(pidFile);
    pids.add(service);
    assert.equal(output, 'started');
    assert.ok(tookMs < 5_000, `resolved on the command's exit (${Math.round(tookMs)} ms)`);
    assert.ok(ms <= tookMs + 1);
    // Still alive well after the call, i.e. nothing killed the group once the command had exited.
    await new Promise((r) => setTimeout(r, 300));
    const stat = readFileSync(`/proc/${service}/stat`, 'utf8');
    assert.match(stat.slice(stat.lastIndexOf(')') + 2), /^[RSD] /, 'the background service is still running');
    assert.match(readFileSync(`/proc/${service}/cmdline`, 'utf8'), /^sleep\0 ?30\0?$/);
    assertNoTempFiles();
    process.kill(service, 'SIGKILL');
    pids.delete(service);
  },
);

test('output: stdout and stderr together, the last 3 lines, at most 400 characters', LIMIT, async () => {
  const mixed = await runRestartCommand(bash('echo one; echo two >&2; echo three; echo four >&2'), 5_000);
  assert.equal(mixed.output, 'two | three | four');
  const long = await runRestartCommand(bash('seq 1 200000'), 10_000);
  assert.equal(long.output, '199998 | 199999 | 200000');
  const wide = await runRestartCommand(bash('printf "x%.0s" $(seq 1 1000)'), 5_000);
  assert.equal(wide.output, `…${'x'.repeat(400)}`);
  const quiet = await runRestartCommand(['true'], 5_000);
  assert.equal(quiet.output, '');
  assertNoTempFiles();
});

test('not_found: a missing or non-executable binary, with the setting named', LIMIT, async () => {
  const missing = join(root, 'no-such-restart-vllm');
  await assert.rejects(runRestartCommand([missing, 'now'], 5_000), (err: unknown) => {
    assert.ok(err instanceof RestartCommandError, String(err));
    assert.equal(err.kind, 'not_found');
    assert.equal(
      err.message,
      `restart command ${JSON.stringify([missing, 'now'])} cannot be run: ${missing} not found (KLR_SERVICE_RESTART_CMD)`,
    );
    return true;
  });
  const notExecutable = join(root, 'restart.sh');
  writeFileSync(notExecutable, '#!/bin/sh\nexit 0\n');
  chmodSync(notExecutable, 0o644);
  await assert.rejects(runRestartCommand([notExecutable], 5_000), (err: unknown) => {
    assert.ok(err instanceof RestartCommandError, String(err));
    assert.equal(err.kind, 'not_found');
    assert.match(err.message, /cannot be run: .*restart\.sh is not executable \(KLR_SERVICE_RESTART_CMD\)$/);
    return true;
  });
  assertNoTempFiles();
});

test('failed: a non-zero exit or a signal, with the output tail', LIMIT, async () => {
  await assert.rejects(
    runRestartCommand(bash('echo stopping vllm; echo "unit vllm.service not found" >&2; exit 3'), 5_000),
    (err: unknown) => {
      assert.ok(err instanceof RestartCommandError, String(err));
      assert.equal(err.kind, 'failed');
      assert.equal(
        err.message,
        'restart command ["bash","-c","echo stopping vllm; echo \\"unit vllm.service not found\\" >&2; exit 3"] exited 3: stopping vllm | unit vllm.service not found',
      );
      return true;
    },
  );
  await assert.rejects(runRestartCommand(bash('kill -KILL $$'), 5_000), (err: unknown) => {
    assert.ok(err instanceof RestartCommandError, String(err));
    assert.equal(err.kind, 'failed');
    assert.match(err.message, /^restart command \[.*\] was killed \(SIGKILL\)$/);
    return true;
  });
  assertNoTempFiles();
});
