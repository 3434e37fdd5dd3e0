// The demo's two-service host (scripts/start/demo-*.ts, neighbour-watch.ts) without starting it: the services
// file it writes is one the worker and the observer accept (llama continues the single-service ids, qwen
// gets its own), the environments carry it instead of the one-service settings, the second service's config
// fits its GPU, and the neighbour's line says what the checks found.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { loadServices, workflowService } from '../../src/service/services-file.js';
import {
  DEMO_SERVICES,
  FITTING_SERVING,
  demoSettings,
  demoSettingsEnv,
  demoWindow,
  settingsTable,
} from '../../scripts/start/demo-plan.js';
import {
  type DemoHost,
  type DemoService,
  demoConfigText,
  demoServicePaths,
  servicesFileText,
} from '../../scripts/start/demo-service.js';
import { demoObserverEnv, demoWorkerEnv } from '../../scripts/start/demo-env.js';
import { neighbourLine, untouched, watchNeighbour } from '../../scripts/start/neighbour-watch.js';

const REPO_ROOT = resolve(import.meta.dirname, '../..');
const dir = await mkdtemp(join(tmpdir(), 'klr-demo-start-'));
after(() => rm(dir, { recursive: true, force: true }));

function demoService(i: 0 | 1, port: number): DemoService {
  const plan = DEMO_SERVICES[i];
  const paths = demoServicePaths(dir, plan);
  return {
    plan,
    name: plan.name,
    configPath: paths.configPath,
    configText: demoConfigText(plan, port),
    stateDir: paths.stateDir,
    logPath: join(paths.stateDir, 'service.log'),
    baseUrl: `http://127.0.0.1:${port}`,
    modelProfile: join(REPO_ROOT, 'sim', 'models', plan.profileFile),
    supervisorPid: 1,
    restartCommand: ['node', 'sim/supervisor.ts', 'restart', '--state-dir', paths.stateDir],
  };
}

test('the services file names both services; llama keeps the single-service ids and paths, qwen has its own', async () => {
  const services = [demoService(0, 8001), demoService(1, 8002)];
  const file = join(dir, 'services.yaml');
  await writeFile(file, servicesFileText(services));
  const specs = loadServices({ KLR_SERVICES_FILE: file, KLR_DATA_DIR: join(dir, 'data') });
  assert.deepEqual(
    specs.map((s) => [s.name, workflowService(s), s.gpus, s.settings.baseUrl, s.modelProfilePath]),
    [
      ['llama', null, [0], 'http://127.0.0.1:8001', services[0]!.modelProfile],
      ['qwen', 'qwen', [1], 'http://127.0.0.1:8002', services[1]!.modelProfile],
    ],
  );
  assert.equal(specs[0]!.settings.configPath, join(dir, 'vllm.yaml'), 'the single-service demo config');
  assert.equal(specs[0]!.settings.logPath, join(dir, 'svc', 'service.log'));
  assert.equal(specs[1]!.settings.configPath, join(dir, 'qwen.yaml'));
  assert.deepEqual(specs[1]!.settings.restartCommand, services[1]!.restartCommand);
  assert.match(services[1]!.configText, /^gpu-memory-utilization: 0\.9$/m);
  // 10 % of an H100 left beside qwen's budget: more than the simulator's 2 GiB burst (docs/simulator.md).
  assert.ok((1 - FITTING_SERVING['gpu-memory-utilization']) * 81559 > 2048 * 2);
});

test('worker and observer get the services file instead of the one-service settings', () => {
  const window = demoWindow(Date.UTC(2026, 11, 2, 15, 0, 0), 'UTC');
  const host: DemoHost = {
    services: [demoService(0, 8001), demoService(1, 8002)],
    gpuStatePath: join(dir, 'gpu-state.json'),
    servicesFile: join(dir, 'services.yaml'),
  };
  const base = {
    PATH: '/usr/bin',
    KLR_SERVICE_CONFIG: '/etc/vllm.yaml',
    KLR_SERVICE_LOG: '/var/log/vllm.log',
    KLR_OBSERVER_FILE: '/var/log/vllm.log',
    KLR_MODEL_PROFILE: '/x.json',
    KLR_NVIDIA_SMI: '/opt/nvidia-smi',
    KLR_HOST: 'laptop',
  };
  const worker = demoWorkerEnv(base, { repoRoot: REPO_ROOT, host, window });
  const observer = demoObserverEnv(base, { host, demoDir: dir });
  for (const env of [worker, observer]) {
    assert.equal(env.KLR_SERVICES_FILE, host.servicesFile);
    assert.equal(env.KLR_HOST, 'laptop');
    for (const k of ['KLR_SERVICE_CONFIG', 'KLR_SERVICE_LOG', 'KLR_OBSERVER_FILE', 'KLR_MODEL_PROFILE'])
      assert.equal(env[k], undefined, k);
  }
  assert.equal(worker.KLR_SIM_GPU_STATE, host.gpuStatePath);
  assert.equal(worker.KLR_NVIDIA_SMI, undefined);
  assert.ok(worker.PATH?.startsWith(join(REPO_ROOT, 'sim', 'bin')));
  assert.equal(worker.KLR_GPU_MAINTENANCE_WINDOW, window.text);
  assert.equal(demoSettingsEnv(window).KLR_SERVICES_FILE, undefined, 'set by the demo host, not the table');
  const table = settingsTable(demoSettings(window, '.data/demo/services.yaml'));
  assert.match(
    table.join('\n'),
    /KLR_SERVICES_FILE\s+\.data\/demo\/services\.yaml\s+unset\s+llama and qwen on one host/,
  );
});

test('the neighbour line says what the checks found', () => {
  const ok = { name: 'qwen', served: 40, failed: 0, pidBefore: 7, pidNow: 7, configUnchanged: true };
  assert.equal(
    neighbourLine(ok),
    'qwen untouched: served 40 requests, 0 failed, same process (pid 7), config unchanged',
  );
  assert.equal(untouched({ ...ok, failed: 1 }), false);
  assert.equal(
    neighbourLine({ ...ok, pidNow: 9, configUnchanged: false }),
    'qwen DISTURBED: served 40 requests, 0 failed, process changed (pid 7 at the start, 9 now), config changed',
  );
  assert.equal(untouched({ ...ok, pidBefore: null, pidNow: null }), false, 'no process is no proof');
});

test('the neighbour watch sends real completions, counts failures, and compares pid and config', async () => {
  let fail = false;
  const requests: unknown[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push(JSON.parse(body));
      res.writeHead(fail ? 500 : 200, { 'content-type': 'application/json' });
      res.end(fail ? '' : JSON.stringify({ choices: [{ text: ' Paris' }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const service = demoService(1, port);
  await mkdir(service.stateDir, { recursive: true });
  await writeFile(join(service.stateDir, 'service.pid'), '4242\n');
  await writeFile(service.configPath, service.configText);
  const watch = await watchNeighbour(service, { intervalMs: 20 });
  try {
    while (requests.length < 3) await delay(10);
    const first = await watch.report();
    assert.ok(first.served >= 2, JSON.stringify(first));
    assert.equal(
      neighbourLine(first),
      `qwen untouched: served ${first.served} requests, 0 failed, same process (pid 4242), config unchanged`,
    );
    assert.deepEqual(requests[0], { model: 'qwen2.5-7b', prompt: 'The capital of France is', max_tokens: 8 });
    fail = true;
    const n = requests.length;
    while (requests.length < n + 2) await delay(10);
    await writeFile(join(service.stateDir, 'service.pid'), '4343\n');
    await writeFile(service.configPath, `${service.configText}enforce-eager: true\n`);
    const second = await watch.report();
    assert.ok(second.failed >= 1, JSON.stringify(second));
    assert.equal(second.pidNow, 4343);
    assert.equal(second.configUnchanged, false);
    assert.equal(untouched(second), false);
  } finally {
    watch.stop();
    await new Promise((r) => server.close(r));
  }
});
