// The Alertmanager config as Alertmanager reads it: `amtool check-config`, and where each kind of alert
// is routed (`amtool config routes test`): critical pages, warnings and info go to chat, other services'
// alerts with a kloros_kind label also reach kloros-healing's HTTP door, and kloros-healing's own
// alerts never do (that would feed the loop its own output).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../support/heal-stack.js';

const AMTOOL = process.env.KLR_AMTOOL ?? 'amtool';
const CONFIG = join(REPO_ROOT, 'deploy', 'alertmanager', 'alertmanager.yml');

async function amtool(args: string[]) {
  const r = await execa(AMTOOL, args, { reject: false, all: true });
  if ((r as { code?: string }).code === 'ENOENT')
    assert.fail(
      `${AMTOOL} not found: install the Debian package "prometheus-alertmanager" (sudo apt-get install prometheus-alertmanager; .ci/run does this), or set KLR_AMTOOL`,
    );
  return r;
}

/** The receivers an alert with these labels goes to. */
async function route(labels: Record<string, string>): Promise<string[]> {
  const r = await amtool([
    'config',
    'routes',
    'test',
    `--config.file=${CONFIG}`,
    ...Object.entries(labels).map(([k, v]) => `${k}=${v}`),
  ]);
  assert.equal(r.exitCode, 0, r.all);
  return r.stdout.trim().split('\n').at(-1)!.split(',');
}

test('amtool check-config accepts the config', async () => {
  const r = await amtool(['check-config', CONFIG]);
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.all ?? '', /SUCCESS/);
});

test('amtool check-config rejects a broken config (the check can fail)', async () => {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'klr-am-'));
  try {
    const text = (await readFile(CONFIG, 'utf8')).replace('receiver: pager', 'receiver: pagr');
    await writeFile(join(dir, 'alertmanager.yml'), text);
    const r = await amtool(['check-config', join(dir, 'alertmanager.yml')]);
    assert.notEqual(r.exitCode, 0);
    assert.match(r.all ?? '', /pagr/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('routing by severity; the door gets other services’ kloros_kind alerts, never KLoROS_* ones', async () => {
  assert.deepEqual(
    await route({ alertname: 'KLoROS_CanaryRestoreFailed', severity: 'critical', host: 'gpu-1' }),
    ['pager'],
  );
  assert.deepEqual(
    await route({ alertname: 'KLoROS_EscalationRequested', severity: 'warning', host: 'gpu-1' }),
    ['chat'],
  );
  assert.deepEqual(await route({ alertname: 'KLoROS_CanaryEligible', severity: 'info', host: 'gpu-1' }), [
    'chat',
  ]);
  // The scrape alerts: a target down carries the target's labels, an absent job only its job.
  assert.deepEqual(
    await route({
      alertname: 'KLoROS_TargetDown',
      severity: 'warning',
      job: 'kloros-observer',
      host: 'gpu-1',
    }),
    ['chat'],
  );
  assert.deepEqual(
    await route({ alertname: 'KLoROS_TargetAbsent', severity: 'warning', job: 'kloros-healing' }),
    ['chat'],
  );
  // Stale figures: a worker cut off from Temporal (its own labels, no kind).
  assert.deepEqual(
    await route({
      alertname: 'KLoROS_WorkerFiguresStale',
      severity: 'warning',
      job: 'kloros-healing',
      host: 'gpu-1',
    }),
    ['chat'],
  );
  assert.deepEqual(
    await route({ alertname: 'VllmOutOfMemory', severity: 'warning', kloros_kind: 'vllm_oom' }),
    ['kloros-healing-door', 'chat'],
  );
  assert.deepEqual(
    await route({ alertname: 'KLoROS_EscalationRequested', severity: 'warning', kloros_kind: 'vllm_oom' }),
    ['chat'],
  );
});

test('the door receiver posts to /v1/alertmanager with a bearer token from a file', async () => {
  const config = parseYaml(await readFile(CONFIG, 'utf8')) as {
    receivers: {
      name: string;
      webhook_configs?: {
        url: string;
        http_config?: { authorization?: { type?: string; credentials_file?: string; credentials?: string } };
      }[];
    }[];
  };
  const door = config.receivers.find((r) => r.name === 'kloros-healing-door')?.webhook_configs?.[0];
  assert.ok(door);
  assert.match(door.url, /^http:\/\/[^/]+\/v1\/alertmanager$/);
  assert.equal(door.http_config?.authorization?.type, 'Bearer');
  assert.ok(door.http_config?.authorization?.credentials_file, 'token from a file');
  assert.equal(door.http_config?.authorization?.credentials, undefined, 'no token in the config');
});
