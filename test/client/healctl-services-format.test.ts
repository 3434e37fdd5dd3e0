// The pure side of healctl on hosts with several vLLM services (issue 17): the --service check, which
// services the environment describes (and for which host), rollback's service choice, the list's order and
// SERVICE column, status grouped by service, and the lease's service in the host view.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseService, quoted } from '../../src/client/cli/options.js';
import { UsageError } from '../../src/client/cli/errors.js';
import { configuredServices } from '../../src/client/cli/healing-target.js';
import { compareListings } from '../../src/client/cli/workflows.js';
import { type ListRow, formatList } from '../../src/client/commands/list.js';
import { formatStatus } from '../../src/client/commands/status.js';
import { rollbackTarget } from '../../src/client/commands/rollback.js';
import { formatHealingState, formatHostState, leaseService } from '../../src/client/cli/state-text.js';
import type { HostStateView } from '../../src/workflows/host-coordinator-messages.js';
import { CliError } from '../../src/client/cli/errors.js';
import type { HealingStateView } from '../../src/workflows/healing-messages.js';

test('--service: a valid name passes; ../x, upper case, 10 kB and blanks are usage errors', () => {
  assert.equal(parseService(undefined, 'status'), undefined);
  assert.equal(parseService('llama-70b', 'status'), 'llama-70b');
  for (const bad of ['../x', 'Llama', 'a b', '', '-a', 'a-', 'x'.repeat(64), 'x'.repeat(10_000)]) {
    assert.throws(
      () => parseService(bad, 'status'),
      (err: unknown) =>
        err instanceof UsageError &&
        err.exitCode === 2 &&
        /^healctl status: bad --service .*: expected a service name of 1-63 characters/.test(err.message) &&
        err.message.length < 400,
      bad.slice(0, 20),
    );
  }
  assert.equal(quoted('x'.repeat(81)), `"${'x'.repeat(80)}"… (81 characters)`);
});

async function withServicesFile<T>(text: string, fn: (file: string) => T): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'klr-svc-fmt-'));
  try {
    const file = join(dir, 'services.yaml');
    await writeFile(file, text);
    return fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const FILE = `services:
  - {name: vllm, config: /etc/vllm/vllm.yaml, restart: [systemctl, restart, vllm], url: "http://127.0.0.1:8000", gpus: [0], legacyIds: true}
  - {name: a, config: /etc/vllm/a.yaml, restart: [systemctl, restart, vllm@a], url: "http://127.0.0.1:8001", gpus: [1]}
`;

test("the environment's services count for its own host only, and only when readable", async () => {
  await withServicesFile(FILE, (file) => {
    const env = { KLR_HOST: 'gpu-1', KLR_SERVICES_FILE: file };
    assert.deepEqual(
      configuredServices('gpu-1', env)?.map((s) => [s.name, s.legacyIds]),
      [
        ['vllm', true],
        ['a', false],
      ],
    );
    assert.equal(configuredServices('gpu-2', env), null, 'another host: the file says nothing about it');
    assert.equal(configuredServices('gpu-1', { KLR_HOST: 'gpu-1' }), null, 'nothing configured');
    assert.equal(
      configuredServices('gpu-1', { KLR_HOST: 'gpu-1', KLR_SERVICES_FILE: `${file}.missing` }),
      null,
      'unreadable: healctl finds the workflows instead',
    );
    // The KLR_SERVICE_* shortcut: its one service, named KLR_SERVICE_NAME (default vllm), keeps the legacy ids.
    const shortcut = configuredServices('gpu-1', {
      KLR_HOST: 'gpu-1',
      KLR_SERVICE_CONFIG: '/etc/vllm/config.yaml',
      KLR_SERVICE_RESTART_CMD: '["systemctl", "restart", "vllm"]',
    });
    assert.deepEqual(
      shortcut?.map((s) => [s.name, s.legacyIds]),
      [['vllm', true]],
    );
  });
});

test('rollback picks the service --service names, else the legacy one; several without one is an error', async () => {
  await withServicesFile(FILE, (file) => {
    const env = { KLR_SERVICES_FILE: file };
    assert.equal(rollbackTarget('a', env).settings.configPath, '/etc/vllm/a.yaml');
    assert.equal(rollbackTarget(undefined, env).name, 'vllm');
    assert.throws(
      () => rollbackTarget('b', env),
      (e: unknown) =>
        e instanceof CliError && /unknown service "b": .*--service one of: vllm, a/.test(e.message),
    );
  });
  const noLegacy = FILE.replace(', legacyIds: true', '');
  await withServicesFile(noLegacy, (file) => {
    assert.throws(
      () => rollbackTarget(undefined, { KLR_SERVICES_FILE: file }),
      (e: unknown) =>
        e instanceof CliError &&
        /runs several services \(vllm, a\): say which with --service/.test(e.message),
    );
  });
  assert.throws(
    () => rollbackTarget('a', {}),
    (e: unknown) => e instanceof CliError && /no services are configured here/.test(e.message),
  );
});

const row = (host: string, service: string | null, kind: string): ListRow => ({
  workflowId:
    service === null ? `kloros-healing/${host}/${kind}` : `kloros-healing/${host}/${service}/${kind}`,
  host,
  service,
  legacyId: service === null,
  kind,
  mode: 'predictive',
  armed: false,
  status: 'RUNNING',
  startTime: '2026-11-28T12:00:00.000Z',
  count24h: 1,
  threshold: 3,
  phase: 'watching',
});

test('list: rows by host, then service (unnamed first), then kind, with a SERVICE column', () => {
  const rows = [
    row('gpu-2', 'a', 'vllm_oom'),
    row('gpu-1', 'b', 'kv_cache'),
    row('gpu-1', 'a', 'vllm_oom'),
    row('gpu-1', null, 'vllm_oom'),
    row('gpu-1', 'a', 'kv_cache'),
  ].sort(compareListings);
  assert.deepEqual(
    rows.map((r) => `${r.host}/${r.service ?? '-'}/${r.kind}`),
    ['gpu-1/-/vllm_oom', 'gpu-1/a/kv_cache', 'gpu-1/a/vllm_oom', 'gpu-1/b/kv_cache', 'gpu-2/a/vllm_oom'],
  );
  const text = formatList(rows);
  assert.match(text, /^HOST +SERVICE +KIND +MODE +ARMED +COUNT +PHASE +STATUS\n/);
  assert.match(text, /^gpu-1 +- +vllm_oom +predictive +no +1\/3 +watching +running$/m);
  assert.match(text, /^gpu-1 +b +kv_cache +/m);
});

function view(workflowId: string, service: string | null): HealingStateView {
  const [, host = '', kind = ''] = /^kloros-healing\/([^/]+)\/(?:[^/]+\/)?([^/]+)$/.exec(workflowId) ?? [];
  return {
    workflowId,
    host,
    service,
    kind,
    next: 'predictive mode',
    phase: 'watching',
    count24h: 1,
    threshold: 3,
    armed: false,
    flagExpiresAt: null,
    forced: null,
    mode: 'predictive',
    nextWindow: { openNow: false, text: 'window opens 03:00 UTC', opensAt: 0, closesAt: 0 },
    hostFigures: null,
    attempts: 0,
    maxAttempts: 3,
    lastCanary: null,
    recommendation: null,
    decisions: [],
  } as unknown as HealingStateView;
}

test('status: one service prints as before; several get a header each, the legacy one named when known', () => {
  const now = Date.parse('2026-11-28T12:00:00Z');
  const single = formatStatus(
    { host: 'gpu-1', healing: [view('kloros-healing/gpu-1/vllm_oom', null)], hostState: null },
    now,
    5,
  );
  assert.match(single, /^vllm_oom on gpu-1 {2}\(kloros-healing\/gpu-1\/vllm_oom\)\n/);
  assert.doesNotMatch(single, /==/);
  const several = formatStatus(
    {
      host: 'gpu-1',
      healing: [
        view('kloros-healing/gpu-1/vllm_oom', 'vllm'),
        view('kloros-healing/gpu-1/a/kv_cache', 'a'),
        view('kloros-healing/gpu-1/a/vllm_oom', 'a'),
      ],
      hostState: null,
    },
    now,
    5,
  );
  const headers = several.split('\n').filter((l) => l.startsWith('== '));
  assert.deepEqual(headers, [
    '== service vllm, legacy ids kloros-healing/gpu-1/<kind> on gpu-1 ==',
    '== service a on gpu-1 ==',
  ]);
  assert.match(
    several,
    /== service a on gpu-1 ==\n\nkv_cache on gpu-1, service a {2}\(kloros-healing\/gpu-1\/a\/kv_cache\)/,
  );
  assert.match(
    formatHealingState(view('kloros-healing/gpu-1/vllm_oom', 'vllm'), now),
    /^vllm_oom on gpu-1 {2}\(/,
    "a legacy id's title stays as it was",
  );
});

test("the host view names the lease's service when the coordinator records it", () => {
  assert.equal(leaseService({ leaseId: 'l' }), '');
  assert.equal(leaseService({ leaseId: 'l', service: null }), '');
  assert.equal(leaseService({ leaseId: 'l', service: 'llama-70b' }), ' of service llama-70b');
  const now = Date.parse('2026-11-28T12:00:00Z');
  const lease = {
    leaseId: 'lease-1',
    holderWorkflowId: 'kloros-healing/gpu-1/llama-70b/vllm_oom',
    kind: 'vllm_oom',
    service: 'llama-70b',
    grantedAt: now - 60_000,
    expiresAt: now + 600_000,
  };
  const host = {
    workflowId: 'kloros-host/gpu-1',
    paused: null,
    restoreFailure: null,
    lease,
    policy: null,
    cooldownUntil: null,
  } as unknown as HostStateView;
  assert.match(
    formatHostState(host, 'gpu-1', now),
    /lease {11}held by vllm_oom canary of service llama-70b since 2026-11-28 11:59:00Z/,
  );
});
