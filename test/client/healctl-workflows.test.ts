// healctl as an operator runs it: real healctl processes (test/support/programs.ts) against a real dev server (with the
// search attributes) and a real host-worker process. One server for the whole file; the maintenance
// window is hours away, so the state the commands print stays put while they run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { parse as parseYaml } from 'yaml';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';
import { hostCoordinatorWorkflowId, hostTaskQueue } from '../../src/domain/identifiers.js';
import {
  acquireOperatorLeaseUpdate,
  releaseLeaseSignal,
} from '../../src/workflows/host-coordinator-messages.js';
import { HostCoordinatorWorkflow } from '../../src/workflows/host-coordinator-workflow.js';
import { type DevServerHandle, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import type { Decision } from '../../src/domain/decision-log.js';
import { decisionsOf, eventually, hostState, symptom } from '../support/healing-harness.js';
import { HEALCTL_SCRIPT } from '../support/programs.js';

const host = `cli-${process.pid}`;
const kind = 'vllm_oom';
let dir: string;
let server: DevServerHandle;
let worker: ResultPromise | undefined;
let connection: Connection;
let client: Client;

const utcHhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);

function healctl(args: string[]) {
  return execa(process.execPath, [HEALCTL_SCRIPT, ...args], {
    env: { TEMPORAL_ADDRESS: server.address, KLR_HOST: host, USER: 'tester' },
    reject: false,
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-healctl-wf-'));
  server = await startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  const now = Date.now();
  worker = execa(process.execPath, ['--import', 'tsx', 'test/support/scripted-worker.ts'], {
    env: {
      TEMPORAL_ADDRESS: server.address,
      KLR_HOST: host,
      KLR_DATA_DIR: dir,
      KLR_GPU_MAINTENANCE_TZ: 'UTC',
      KLR_GPU_MAINTENANCE_WINDOW: `${utcHhmm(now + 6 * 3600_000)}-${utcHhmm(now + 7 * 3600_000)}`,
      KLR_PREDICT_INTERVAL: '0',
    },
    stdout: 'pipe',
    stderr: 'inherit',
    reject: false,
  });
  const proc = worker;
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('worker ready')) resolve();
    });
    void proc.then((r) => reject(new Error(`worker exited early (${String(r.exitCode ?? r.signal)})`)));
  });
});

after(async () => {
  worker?.kill('SIGTERM');
  await worker;
  await connection?.close();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('symptom records one and prints count, threshold, flag and mode; --json says the same', async () => {
  const human = await healctl(['symptom', kind, '--alloc-mb', '512', '--detail', 'family=torch_oom']);
  assert.equal(human.exitCode, 0, human.stderr);
  assert.match(human.stdout, new RegExp(`^${kind} on ${host}: symptom counted`));
  assert.match(human.stdout, /symptoms 24 h {2}1 of threshold 3/);
  assert.match(human.stdout, /escalation {5}not armed/);
  assert.match(human.stdout, /mode {11}\w+/);
  const json = await healctl(['symptom', kind, '--id', 'same-1', '--json']);
  assert.equal(json.exitCode, 0, json.stderr);
  const r = JSON.parse(json.stdout) as {
    outcome: string;
    count24h: number;
    threshold: number;
    armed: boolean;
  };
  assert.deepEqual([r.outcome, r.count24h, r.threshold, r.armed], ['counted', 2, 3, false]);
});

test('a symptom the workflow rejects exits 1 naming the field and why', async () => {
  const future = new Date(Date.now() + 3600_000).toISOString();
  const r = await healctl(['symptom', kind, '--event-time', future]);
  assert.equal(r.exitCode, 1);
  assert.match(r.stderr, /healctl symptom: the workflow rejected it: .*eventTime: .* in the future/);
});

test('status explains the state in words and as JSON; an unknown kind says what to do', async () => {
  const human = await healctl(['status', kind]);
  assert.equal(human.exitCode, 0, human.stderr);
  assert.match(human.stdout, new RegExp(`${kind} on ${host} {2}\\(kloros-healing/${host}/${kind}\\)`));
  assert.match(human.stdout, /next: \S/);
  assert.match(human.stdout, /symptoms 24 h {3}2 of threshold 3/);
  assert.match(
    human.stdout,
    /window {10}window opens \d\d:\d\d UTC, in [56] h \d+ m \(opens \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\)/,
  );
  assert.match(human.stdout, /attempts {8}0 of \d+/);
  assert.match(human.stdout, new RegExp(`host ${host}: no coordinator yet`));
  assert.ok(!human.stdout.includes('\x1b['), 'no escape sequences when stdout is not a terminal');

  const json = await healctl(['status', kind, '--json']);
  const s = JSON.parse(json.stdout) as { host: string; healing: { count24h: number; next: string }[] };
  assert.equal(s.host, host);
  assert.equal(s.healing[0]?.count24h, 2);

  const missing = await healctl(['status', 'no_such_kind']);
  assert.equal(missing.exitCode, 1);
  assert.match(missing.stderr, new RegExp(`no healing workflow kloros-healing/${host}/no_such_kind`));
  assert.match(missing.stderr, /healctl symptom no_such_kind/);
  assert.match(missing.stderr, /healctl list/);
});

test('list shows the workflows from visibility with host, kind, mode, armed and count', async () => {
  const rows = await eventually(
    'the workflow in visibility',
    async () => {
      const r = await healctl(['list', '--json']);
      assert.equal(r.exitCode, 0, r.stderr);
      const parsed = JSON.parse(r.stdout) as { host: string; kind: string; count24h: number; mode: string }[];
      return parsed.length > 0 ? parsed : undefined;
    },
    60_000,
  );
  assert.equal(rows[0]?.host, host);
  assert.equal(rows[0]?.kind, kind);
  assert.equal(rows[0]?.count24h, 2);
  const human = await healctl(['list', '--all-hosts']);
  assert.equal(human.exitCode, 0, human.stderr);
  // 0.5 (issue 17): a SERVICE column; "-" for a legacy id whose service no worker has named.
  assert.match(human.stdout, /^HOST +SERVICE +KIND +MODE +ARMED +COUNT +PHASE +STATUS$/m);
  assert.match(human.stdout, new RegExp(`^${host} +\\S+ +${kind} +\\w+ +no +2/3 +.+ +running$`, 'm'));
});

test('escalate arms, clear disarms, both need a reason and land in the history', async () => {
  const noReason = await healctl(['escalate', kind]);
  assert.equal(noReason.exitCode, 2);
  assert.match(noReason.stderr, /--reason is required/);

  const esc = await healctl(['escalate', kind, '--reason', 'seen in app logs']);
  assert.equal(esc.exitCode, 0, esc.stderr);
  assert.match(esc.stdout, /^armed by tester@/);
  assert.match(esc.stdout, /escalation {6}ARMED/);

  const clear = await healctl(['clear', kind, '--reason', 'fixed by hand', '--by', 'alice', '--json']);
  assert.equal(clear.exitCode, 0, clear.stderr);
  assert.equal((JSON.parse(clear.stdout) as { armed: boolean }).armed, false);

  const history = await healctl(['history', kind]);
  assert.equal(history.exitCode, 0, history.stderr);
  assert.match(history.stdout, /^TIME +ACTION +REPEATS +REASON$/m);
  assert.match(history.stdout, /seen in app logs \(by tester@/);
  assert.match(history.stdout, /escalation cleared +fixed by hand .*\(by alice\)$/m);
  const json = await healctl(['history', kind, '--json']);
  // Scripts reading --json match on the code and its params; the words are there for people.
  const { decisions } = JSON.parse(json.stdout) as { decisions: Decision[] };
  const cleared = decisionsOf(decisions, 'escalation_cleared');
  assert.equal(cleared.length, 1);
  assert.equal(cleared[0]!.by, 'alice');
  assert.deepEqual([cleared[0]!.params.reason, cleared[0]!.params.wasArmed], ['fixed by hand', true]);
  assert.ok(cleared[0]!.reason.startsWith('fixed by hand'));
});

test('pause, resume and ack change the host coordinator', async () => {
  const pause = await healctl(['pause', host, '--reason', 'driver update']);
  assert.equal(pause.exitCode, 0, pause.stderr);
  assert.match(pause.stdout, /paused {10}yes, by tester@\S+: driver update/);
  assert.equal((await hostState(client, host)).paused?.reason, 'driver update');

  const resume = await healctl(['resume', host]);
  assert.equal(resume.exitCode, 0, resume.stderr);
  assert.equal((await hostState(client, host)).paused, null);

  const ack = await healctl(['ack', host, '--reason', 'checked', '--json']);
  assert.equal(ack.exitCode, 0, ack.stderr);
  const answer = JSON.parse(ack.stdout) as { restoreFailure: unknown; acknowledged: unknown };
  assert.equal(answer.restoreFailure, null);
  assert.equal(answer.acknowledged, null, 'nothing was latched, so nothing was acknowledged');
  // Issue 13: with nothing latched it says so, instead of "acknowledged".
  const plain = await healctl(['ack', host, '--reason', 'checked']);
  assert.equal(plain.exitCode, 0, plain.stderr);
  assert.match(plain.stdout, new RegExp(`^nothing to acknowledge: no restore failure is latched on ${host}`));
  assert.doesNotMatch(plain.stdout, /^acknowledged/);
});

test('status exits 1 while a failed rollback latches the host, and 0 once acknowledged', async () => {
  const lease = await client.workflow.executeUpdateWithStart(acquireOperatorLeaseUpdate, {
    args: [
      { requestId: 'latch-1', purpose: 'rollback', by: 'tester', reason: 'test', predictedDowntimeMs: 1_000 },
    ],
    startWorkflowOperation: new WithStartWorkflowOperation(HostCoordinatorWorkflow, {
      workflowId: hostCoordinatorWorkflowId(host),
      taskQueue: hostTaskQueue(host),
      args: [{ host }],
      workflowIdConflictPolicy: 'USE_EXISTING',
    }),
  });
  assert.equal(lease.granted, true, lease.reason);
  await client.workflow.getHandle(hostCoordinatorWorkflowId(host)).signal(releaseLeaseSignal, {
    leaseId: lease.leaseId!,
    downtimeMs: 1_000,
    outcome: 'rollback_failed',
    restoreFailure: 'healctl rollback by tester: the service was not healthy',
  });
  await eventually('latched', async () => (await hostState(client, host)).restoreFailure !== null);

  const latched = await healctl(['status', kind]);
  assert.equal(latched.exitCode, 1, 'a latched host is a non-zero status');
  assert.match(latched.stdout, /restore/i, 'the state is still printed');
  assert.match(
    latched.stderr,
    new RegExp(`^healctl status: ${host} is latched: .* until \`healctl ack ${host}\``),
  );
  const ack = await healctl(['ack', host, '--reason', 'service checked by hand']);
  assert.equal(ack.exitCode, 0, ack.stderr);
  const clear = await healctl(['status', kind]);
  assert.equal(clear.exitCode, 0, clear.stderr);
});

test('list on a host with no workflows says which hosts have some', async () => {
  const r = await healctl(['list', '--host', 'no-such-host']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(r.stdout, 'no healing workflows'); // execa strips the final newline
  assert.match(
    r.stderr,
    new RegExp(`^healctl list: none on no-such-host; hosts with healing workflows: .*${host}`),
  );
});

test('-o yaml and -o json print the same data; -o table cuts a long reason that -o wide keeps whole', async () => {
  const json = await healctl(['status', kind, '-o', 'json']);
  assert.equal(json.exitCode, 0, json.stderr);
  const yaml = await healctl(['status', kind, '--output', 'yaml']);
  assert.equal(yaml.exitCode, 0, yaml.stderr);
  const fromYaml = parseYaml(yaml.stdout) as { host: string; healing: { kind: string }[] };
  const fromJson = JSON.parse(json.stdout) as typeof fromYaml;
  assert.equal(fromYaml.host, fromJson.host);
  assert.equal(fromYaml.healing[0]?.kind, kind);

  const reason = `long reason ${'x'.repeat(300)} end`;
  assert.equal((await healctl(['escalate', kind, '--reason', reason])).exitCode, 0);
  await healctl(['clear', kind, '--reason', 'done']);
  const table = await healctl(['history', kind]);
  assert.equal(table.exitCode, 0, table.stderr);
  assert.match(table.stdout, /long reason x+…$/m);
  assert.ok(!table.stdout.includes(' end (by '), 'the table cut the reason');
  const wide = await healctl(['history', kind, '-o', 'wide']);
  assert.ok(wide.stdout.includes(`${reason} (by tester@`), 'wide keeps it whole');
  const bad = await healctl(['status', '-o', 'xml']);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /xml.*(table|choices)/);
});

test('wait returns once the condition holds, and exits 1 at its timeout saying where things stand', async () => {
  const waiting = healctl(['wait', kind, '--for', 'armed', '--timeout', '60s']);
  await delay(1_000);
  assert.equal((await healctl(['escalate', kind, '--reason', 'wait test'])).exitCode, 0);
  const armed = await waiting;
  assert.equal(armed.exitCode, 0, armed.stderr);
  assert.equal(armed.stdout, `${kind} on ${host}: armed`);
  // The window is hours away: no canary ends within 3 s.
  const timedOut = await healctl(['wait', kind, '--for', 'promoted', '--timeout', '3s']);
  assert.equal(timedOut.exitCode, 1);
  assert.match(
    timedOut.stderr,
    new RegExp(`^healctl wait: ${kind} on ${host} was not promoted after 3 s \\(phase .*armed`),
  );
  assert.equal((await healctl(['clear', kind, '--reason', 'wait test done'])).exitCode, 0);
  const bad = await healctl(['wait', kind, '--for', 'happy']);
  assert.equal(bad.exitCode, 2);
});

test('start is idempotent and cancel ends the workflow', async () => {
  const first = await healctl(['start', 'kv_cache']);
  assert.equal(first.exitCode, 0, first.stderr);
  assert.match(first.stdout, new RegExp(`^started: kloros-healing/${host}/kv_cache`));
  const again = await healctl(['start', 'kv_cache']);
  assert.match(again.stdout, /^already running: /);
  const cancel = await healctl(['cancel', 'kv_cache', '--yes']);
  assert.equal(cancel.exitCode, 0, cancel.stderr);
  await eventually('cancelled', async () => {
    const d = await client.workflow.getHandle(`kloros-healing/${host}/kv_cache`).describe();
    return d.status.name === 'CANCELLED' ? true : undefined;
  });
  const twice = await healctl(['cancel', 'kv_cache', '--yes']);
  assert.equal(twice.exitCode, 1);
  assert.match(twice.stderr, /is not running \(cancelled\)/);
});

test('watch prints a new block when the state changes, and Ctrl-C ends it with exit 0', async () => {
  const proc = execa(process.execPath, [HEALCTL_SCRIPT, 'watch', kind, '--interval', '0.5'], {
    env: { TEMPORAL_ADDRESS: server.address, KLR_HOST: host },
    reject: false,
  });
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  try {
    await eventually('first block', async () => (/symptoms 24 h/.test(out) ? true : undefined), 60_000);
    const blocksBefore = out.split('\n--- ').length;
    await delay(1500);
    assert.equal(out.split('\n--- ').length, blocksBefore, 'no new block while nothing changed');
    const counted = await symptom(client, host, kind);
    await eventually(
      'the new count',
      async () => (out.includes(`symptoms 24 h   ${counted.count24h} of threshold`) ? true : undefined),
      30_000,
    );
  } finally {
    proc.kill('SIGINT');
  }
  const r = await proc;
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(out, /^--- \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/m);
});

test('watch --json prints one JSON line per change, the status --json object', async () => {
  const proc = execa(process.execPath, [HEALCTL_SCRIPT, 'watch', kind, '--json', '--interval', '0.5'], {
    env: { TEMPORAL_ADDRESS: server.address, KLR_HOST: host },
    reject: false,
  });
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  const lines = () =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { host: string; healing: { kind: string; count24h: number }[] });
  try {
    await eventually('first line', async () => (lines().length > 0 ? true : undefined), 60_000);
    const first = lines()[0]!;
    assert.equal(first.host, host);
    assert.equal(first.healing[0]?.kind, kind);
    await delay(1500);
    assert.equal(lines().length, 1, 'no new line while nothing changed');
    const counted = await symptom(client, host, kind);
    await eventually(
      'a line with the new count',
      async () => (lines().at(-1)?.healing[0]?.count24h === counted.count24h ? true : undefined),
      30_000,
    );
    assert.ok(lines().length >= 2);
  } finally {
    proc.kill('SIGINT');
  }
  const r = await proc;
  assert.equal(r.exitCode, 0, r.stderr);
});
