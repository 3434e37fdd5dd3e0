// The documented examples of sending symptoms from other services, run as they would be run: the plain
// Temporal CLI (update-with-start and signal-with-start), a separate process using only
// @temporalio/client by message name, and curl through the HTTP door. The workflow's state must count
// each distinct symptom once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { DevServerHandle } from '../../src/servers/dev-server.js';
import { resolveTemporalCli } from '../../src/servers/temporal-cli.js';
import { loadTemporalTarget } from '../../src/config/temporal-connection.js';
import { type SymptomDelivery, createSymptomDelivery } from '../../src/observer/delivery.js';
import { type HttpDoor, startHttpDoor } from '../../src/observer/http-door.js';
import { loadHttpDoorSettings } from '../../src/observer/observer-settings.js';
import { REPO_ROOT } from '../support/heal-stack.js';
import {
  queryState,
  startObserverServer,
  startWorkerProcess,
  waitFor,
  type WorkerProcess,
} from '../support/observer-stack.js';

const host = `native-${process.pid}`;
const TOKEN = 'native-senders-token-0123456789';
let dir: string;
let server: DevServerHandle;
let worker: WorkerProcess;
let cli: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-native-'));
  cli = await resolveTemporalCli();
  server = await startObserverServer(dir);
  worker = await startWorkerProcess({ address: server.address, host, dataDir: dir });
});

after(async () => {
  await worker?.stop();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

function runCliExample(...args: string[]) {
  return execa('bash', [join(REPO_ROOT, 'examples', 'send-symptom-cli.sh'), ...args], {
    env: { TEMPORAL_CLI: cli, TEMPORAL_ADDRESS: server.address },
    reject: false,
  });
}

function runSdkExample(...args: string[]) {
  return execa(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'examples', 'send-symptom-sdk.ts'), ...args],
    {
      cwd: REPO_ROOT,
      env: { TEMPORAL_ADDRESS: server.address },
      reject: false,
    },
  );
}

test('the Temporal CLI example: update-with-start answers the count; signal-with-start is counted; a retry counts once', async () => {
  const first = await runCliExample(
    'update',
    host,
    'vllm_oom',
    'cli-update-1',
    '{"allocMb":2048,"family":"torch_oom"}',
  );
  assert.equal(first.exitCode, 0, first.stderr);
  assert.match(first.stdout, /"count24h":\s*1/);
  const retry = await runCliExample(
    'update',
    host,
    'vllm_oom',
    'cli-update-1',
    '{"allocMb":2048,"family":"torch_oom"}',
  );
  assert.equal(retry.exitCode, 0, retry.stderr);
  const signal = await runCliExample('signal', host, 'vllm_oom', 'cli-signal-1');
  assert.equal(signal.exitCode, 0, signal.stderr);
  const state = await waitFor('the CLI signal counted', async () => {
    const s = await queryState(server.address, host);
    return s.count24h === 2 ? s : undefined;
  });
  assert.equal(state.totals.counted, 2);
  // A payload the workflow refuses is refused to the CLI too, naming the field.
  const bad = await runCliExample('update', host, 'vllm_oom', 'cli-bad', '{"allocMb":-1}');
  assert.notEqual(bad.exitCode, 0);
  assert.match(`${bad.stdout}${bad.stderr}`, /details\.allocMb/);
  const usage = await runCliExample('update', '../etc', 'vllm_oom', 'x');
  assert.equal(usage.exitCode, 2);
});

test('the SDK example, a separate process speaking to the workflow by name only', async () => {
  const first = await runSdkExample(
    '--host',
    host,
    '--kind',
    'vllm_oom',
    '--id',
    'sdk-1',
    '--alloc-mb',
    '1024',
  );
  assert.equal(first.exitCode, 0, first.stderr);
  const answer = JSON.parse(first.stdout) as { outcome: string; count24h: number };
  assert.equal(answer.count24h, 3);
  const again = await runSdkExample('--host', host, '--kind', 'vllm_oom', '--id', 'sdk-1');
  assert.equal(again.exitCode, 0, again.stderr);
  const signalled = await runSdkExample('--host', host, '--kind', 'vllm_oom', '--id', 'sdk-2', '--signal');
  assert.equal(signalled.exitCode, 0, signalled.stderr);
  assert.deepEqual(JSON.parse(signalled.stdout), { signalled: true, id: 'sdk-2' });
  const state = await waitFor('the SDK signal counted', async () => {
    const s = await queryState(server.address, host);
    return s.count24h === 4 ? s : undefined;
  });
  assert.equal(state.totals.counted, 4);
  // The SDK example on a new kind starts that kind's workflow.
  const other = await runSdkExample('--host', host, '--kind', 'kv_cache_small', '--id', 'sdk-3');
  assert.equal(other.exitCode, 0, other.stderr);
  assert.equal((await queryState(server.address, host, 'kv_cache_small')).count24h, 1);
});

test('the curl example through the HTTP door', async () => {
  const settings = loadHttpDoorSettings({
    KLR_HTTP_DOOR: '1',
    KLR_HTTP_DOOR_TOKEN: TOKEN,
    KLR_HTTP_DOOR_ADDR: '127.0.0.1:0',
  });
  assert.ok(settings);
  const quiet = {
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: () => undefined,
  };
  let delivery: SymptomDelivery | undefined;
  let door: HttpDoor | undefined;
  try {
    delivery = await createSymptomDelivery({
      host,
      target: loadTemporalTarget({ TEMPORAL_ADDRESS: server.address }),
      spoolDir: join(dir, 'spool'),
      log: quiet,
    });
    door = await startHttpDoor({ settings, delivery, host, log: quiet });
    const env = { KLR_HTTP_DOOR_URL: door.url, KLR_HTTP_DOOR_TOKEN: TOKEN };
    const example = join(REPO_ROOT, 'examples', 'send-symptom-http.sh');
    const sent = await execa('bash', [example, 'vllm_oom', 'curl-1', '{"allocMb":512}'], {
      env,
      reject: false,
    });
    assert.equal(sent.exitCode, 0, sent.stderr);
    assert.deepEqual(JSON.parse(sent.stdout), {
      accepted: true,
      id: 'curl-1',
      host,
      delivered: true,
      count: 5,
    });
    const again = await execa('bash', [example, 'vllm_oom', 'curl-1'], { env, reject: false });
    assert.equal(again.exitCode, 0, again.stderr);
    const wrongToken = await execa('bash', [example, 'vllm_oom', 'curl-2'], {
      env: { ...env, KLR_HTTP_DOOR_TOKEN: 'not-the-token-at-all' },
      reject: false,
    });
    assert.notEqual(wrongToken.exitCode, 0);
    assert.match(wrongToken.stdout, /bearer token/);
    assert.equal((await queryState(server.address, host)).count24h, 5);
  } finally {
    await door?.close();
    await delivery?.close();
  }
});
