// healctl without a Temporal server: usage mistakes exit 2 with a clear message, an unreachable server
// exits 1 with what to do, and `rollback` on a temporary config directory with a real restart command
// and a real HTTP health endpoint (previous config present and absent; a restart command that overruns
// or is interrupted).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { pickFreePort } from '../../src/servers/dev-server.js';
import { assertGroupGone, killQuietly, pidsFrom, waitForMembers } from '../support/process-group.js';
import { HEALCTL_SCRIPT } from '../support/programs.js';

let dir: string;
let deadAddress: string;
let health: Server;
let healthUrl: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-healctl-usage-'));
  // A free port nothing listens on: connecting to it is refused.
  deadAddress = `127.0.0.1:${await pickFreePort()}`;
  health = createServer((req, res) => {
    res.writeHead(req.url === '/health' ? 200 : 404).end();
  });
  await new Promise<void>((resolve) => health.listen(0, '127.0.0.1', resolve));
  healthUrl = `http://127.0.0.1:${(health.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise((resolve) => health.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const healctl = (args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [HEALCTL_SCRIPT, ...args], {
    env: { TEMPORAL_ADDRESS: deadAddress, KLR_HOST: 'gpu-test', USER: 'tester', ...env },
    reject: false,
  });

test('usage mistakes exit 2 and say what is expected', async () => {
  const [unknown, missingKind, badKind, badDetail, noReason, badHost] = await Promise.all([
    healctl(['statuss']),
    healctl(['symptom']),
    healctl(['status', '../x']),
    healctl(['symptom', 'vllm_oom', '--detail', 'allocMb']),
    healctl(['pause', 'gpu-1']),
    healctl(['resume', 'a b']),
  ]);
  assert.equal(unknown.exitCode, 2);
  assert.match(unknown.stderr, /unknown command 'statuss'/);
  assert.equal(missingKind.exitCode, 2);
  assert.match(missingKind.stderr, /missing required argument 'kind'/);
  assert.equal(badKind.exitCode, 2);
  assert.match(badKind.stderr, /healctl status: bad kind "\.\.\/x": expected a symptom kind/);
  assert.equal(badDetail.exitCode, 2);
  assert.match(badDetail.stderr, /bad --detail "allocMb": expected key=value/);
  assert.equal(noReason.exitCode, 2);
  assert.match(noReason.stderr, /healctl pause: --reason is required/);
  assert.equal(badHost.exitCode, 2);
  assert.match(badHost.stderr, /bad host "a b": expected a host name/);
});

test('every command has --help with examples', async () => {
  const r = await healctl(['status', '--help']);
  assert.equal(r.exitCode, 0);
  assert.match(r.stdout, /Examples:\n {2}healctl status/);
});

test('an unreachable server exits 1 with the address and what to do', async () => {
  const r = await healctl(['status', 'vllm_oom']);
  assert.equal(r.exitCode, 1);
  assert.match(
    r.stderr,
    new RegExp(
      `^healctl: cannot reach Temporal at ${deadAddress} .*— start the local stack with \`npm start\`, or pass --address \\(TEMPORAL_ADDRESS\\)`,
    ),
  );
});

test('connection flags win over the environment, and TLS failures say to check TLS, not to start a server', async () => {
  // Both wait out the 5 s connect timeout: side by side.
  const [viaFlag, tls] = await Promise.all([
    healctl(['status', 'vllm_oom', '--address', '127.0.0.1:9', '-n', 'prod'], {
      TEMPORAL_ADDRESS: deadAddress,
    }),
    healctl(['--tls', 'list', '--host', 'h']),
  ]);
  assert.equal(viaFlag.exitCode, 1);
  assert.match(viaFlag.stderr, /^healctl: cannot reach Temporal at 127\.0\.0\.1:9 /);
  assert.equal(tls.exitCode, 1);
  assert.match(
    tls.stderr,
    new RegExp(`cannot reach Temporal at ${deadAddress} over TLS .*check that the server speaks TLS`),
  );
  assert.doesNotMatch(tls.stderr, /npm start/);
});

test('--version prints the package version', async () => {
  const r = await healctl(['--version']);
  assert.equal(r.exitCode, 0);
  assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+$/);
});

async function serviceDir(name: string, previous: string | null) {
  const root = join(dir, name);
  const backups = join(root, 'backups');
  await mkdir(backups, { recursive: true });
  const config = join(root, 'vllm.yaml');
  await writeFile(config, 'model: m\ngpu-memory-utilization: 0.85\n');
  if (previous !== null) await writeFile(join(backups, 'vllm.yaml.previous'), previous);
  return {
    config,
    backups,
    env: {
      KLR_DATA_DIR: join(root, 'data'),
      KLR_SERVICE_CONFIG: config,
      KLR_BACKUP_DIR: backups,
      KLR_SERVICE_RESTART_CMD: JSON.stringify([process.execPath, '-e', 'process.exit(0)']),
      KLR_SERVICE_URL: healthUrl,
      KLR_SERVICE_RESTART_TIMEOUT: '20',
    },
  };
}

// The restart command's children keep its output open and outlive it (issue 13): the timeout still bounds
// the whole restart, and nothing is left running.
const orphaningRestart = (pidFile: string) =>
  JSON.stringify(['bash', '-c', `echo $$ >> ${pidFile}; sleep 777 & sleep 778; echo never`]);

// Each rollback waits out the 5 s connect timeout for the lease it cannot take (no Temporal here), on a
// config directory of its own: these three run side by side (the two that bound healctl's time run after
// them, one at a time).
describe('rollback', { concurrency: true }, () => {
  test('rollback puts the previous config back, restarts, waits healthy and writes an audit line', async () => {
    const s = await serviceDir('present', 'model: m\ngpu-memory-utilization: 0.9\n');
    // Without Temporal it cannot take the host's lease: refused unless --force.
    const refused = await healctl(['rollback'], s.env);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /cannot take the lease of gpu-test: .*Pass --force to go on without it/);
    assert.equal(await readFile(s.config, 'utf8'), 'model: m\ngpu-memory-utilization: 0.85\n');

    const r = await healctl(['rollback', '--force', '--reason', 'too slow'], s.env);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(
      r.stdout,
      /^rolled back .*vllm\.yaml to .*vllm\.yaml\.previous \(the replaced config is kept as .*vllm\.yaml\.rolled-back\)/,
    );
    assert.match(r.stdout, /gpu-memory-utilization: 0\.85 → 0\.9/);
    assert.match(r.stdout, /service restarted and healthy after \d+\.\d{3} s/);
    assert.equal(await readFile(s.config, 'utf8'), 'model: m\ngpu-memory-utilization: 0.9\n');
    assert.equal(
      await readFile(join(s.backups, 'vllm.yaml.rolled-back'), 'utf8'),
      'model: m\ngpu-memory-utilization: 0.85\n',
    );
    const audit = (await readFile(join(s.env.KLR_DATA_DIR, 'audit', 'rollback-gpu-test.jsonl'), 'utf8'))
      .trim()
      .split('\n');
    const record = JSON.parse(audit[0] ?? '') as {
      changed: boolean;
      healthy: boolean;
      by: string;
      reason: string;
    };
    assert.deepEqual([record.changed, record.healthy, record.reason], [true, true, 'too slow']);
    assert.match(record.by, /^tester@/);

    // Again: nothing to write; --no-restart leaves the service alone.
    const again = await healctl(['rollback', '--force', '--no-restart', '--json'], s.env);
    assert.equal(again.exitCode, 0, again.stderr);
    const second = JSON.parse(again.stdout) as { changed: boolean; restarted: boolean };
    assert.deepEqual([second.changed, second.restarted], [false, false]);
  });

  test('rollback without a recorded promotion fails clearly and touches nothing', async () => {
    const s = await serviceDir('absent', null);
    const r = await healctl(['rollback', '--force'], s.env);
    assert.equal(r.exitCode, 1);
    assert.match(
      r.stderr,
      /healctl rollback: no previous config recorded at .*vllm\.yaml\.previous: no candidate has been promoted/,
    );
    assert.equal(await readFile(s.config, 'utf8'), 'model: m\ngpu-memory-utilization: 0.85\n');
  });

  test('rollback whose restart leaves the service unhealthy exits 1 and says where the replaced config is', async () => {
    const s = await serviceDir('unhealthy', 'model: m\n');
    const r = await healctl(['rollback', '--force'], {
      ...s.env,
      KLR_SERVICE_URL: `http://${deadAddress}`,
      KLR_SERVICE_RESTART_TIMEOUT: '2',
    });
    assert.equal(r.exitCode, 1);
    assert.match(
      r.stderr,
      /the config was rolled back but the service was not healthy within 2000 ms .*vllm\.yaml\.rolled-back/,
    );
  });
});

// These two alone, not beside the others: they bound how long healctl takes to start the restart, to
// end it at its timeout, and to stop after Ctrl-C.
test('rollback whose restart command overruns ends its whole process group at the timeout and exits 1', async () => {
  const s = await serviceDir('overrun', 'model: m\n');
  const pidFile = join(dir, 'overrun.pids');
  const started = performance.now();
  try {
    const r = await healctl(['rollback', '--force'], {
      ...s.env,
      KLR_SERVICE_RESTART_CMD: orphaningRestart(pidFile),
      KLR_SERVICE_RESTART_TIMEOUT: '1',
    });
    const tookMs = performance.now() - started;
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(
      r.stderr,
      /the config was rolled back but restart command \[.*\] did not finish within 1000 ms \(KLR_SERVICE_RESTART_TIMEOUT\); its process group was stopped/,
    );
    assert.ok(tookMs < 15_000, `healctl exited ${Math.round(tookMs)} ms after it started`);
    const [pgid] = await pidsFrom(pidFile);
    await assertGroupGone(pgid);
  } finally {
    for (const pgid of await pidsFrom(pidFile, 1, 0).catch(() => [])) killQuietly(-pgid);
  }
});

test('Ctrl-C during the rollback restart stops the restart command group, records why and exits 1', async () => {
  const s = await serviceDir('interrupted', 'model: m\n');
  const pidFile = join(dir, 'interrupted.pids');
  try {
    const run = healctl(['rollback', '--force', '--json'], {
      ...s.env,
      KLR_SERVICE_RESTART_CMD: orphaningRestart(pidFile),
      KLR_SERVICE_RESTART_TIMEOUT: '60',
    });
    const [pgid] = await pidsFrom(pidFile, 1, 15_000);
    await waitForMembers(pgid, /^sleep 77[78]$/, 2);
    const interruptedAt = performance.now();
    run.kill('SIGINT');
    const r = await run;
    assert.equal(r.exitCode, 1, r.stderr);
    assert.ok(performance.now() - interruptedAt < 5_000, 'exited promptly');
    assert.match(r.stderr, /the config was rolled back but the restart was interrupted \(SIGINT\)/);
    const record = JSON.parse(r.stdout) as { healthy: boolean; failure: string };
    assert.deepEqual([record.healthy, record.failure], [false, 'the restart was interrupted (SIGINT)']);
    await assertGroupGone(pgid);
  } finally {
    for (const pgid of await pidsFrom(pidFile, 1, 0).catch(() => [])) killQuietly(-pgid);
  }
});
