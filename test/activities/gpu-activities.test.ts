// The worker's GPU activities on a host with several services: each call reaches the service its workflow id
// names, a call for a service the host does not run (or a named id for the legacy service) is refused
// without retries, and VRAM is measured on the service's own GPUs. Real nvidia-smi stand-in, real files.
//   node --import tsx --test test/activities/gpu-activities.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { SERVICE_NOT_CONFIGURED, createGpuActivities } from '../../src/activities/gpu-activities.js';
import { loadSettings } from '../../src/config/settings.js';
import { simGpuUuid } from '../../sim/lib/gpu-state.js';
import { NVIDIA_SMI_STAND_IN } from '../support/heal-stack.js';

let dir: string;
const saved = { smi: process.env.KLR_NVIDIA_SMI, state: process.env.KLR_SIM_GPU_STATE };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-gpu-activities-'));
  const gpus = [0, 1, 2, 3].map((index) => ({
    index,
    uuid: simGpuUuid(index),
    name: 'NVIDIA H100 80GB HBM3',
    totalMb: 81559,
    usedMb: 1000 * (index + 1),
    utilizationPct: 0,
  }));
  // pids far above any real one: nobody's processes, shown as they are (the stand-in keeps test entries).
  const processes = [
    { pid: 4_000_001, name: 'python3', usedMb: 900, gpuUuid: simGpuUuid(1) },
    { pid: 4_000_002, name: 'python3', usedMb: 2900, gpuUuid: simGpuUuid(3) },
  ];
  await writeFile(join(dir, 'gpu.json'), JSON.stringify({ gpus, processes }));
  process.env.KLR_NVIDIA_SMI = NVIDIA_SMI_STAND_IN;
  process.env.KLR_SIM_GPU_STATE = join(dir, 'gpu.json');
  for (const name of ['a', 'b']) await writeFile(join(dir, `${name}.yaml`), 'model: m\n');
  await writeFile(
    join(dir, 'services.yaml'),
    [
      'services:',
      '  - name: llama',
      '    config: a.yaml',
      '    restart: [/bin/true]',
      '    url: http://127.0.0.1:18001',
      '    gpus: [0, 1]',
      '    legacyIds: true',
      '  - name: qwen',
      '    config: b.yaml',
      '    restart: [/bin/true]',
      '    url: http://127.0.0.1:18002',
      `    gpus: ["${simGpuUuid(3)}"]`,
      '',
    ].join('\n'),
  );
});

after(async () => {
  if (saved.smi === undefined) delete process.env.KLR_NVIDIA_SMI;
  else process.env.KLR_NVIDIA_SMI = saved.smi;
  if (saved.state === undefined) delete process.env.KLR_SIM_GPU_STATE;
  else process.env.KLR_SIM_GPU_STATE = saved.state;
  await rm(dir, { recursive: true, force: true });
});

function activities(env: Record<string, string>) {
  const full = { KLR_DATA_DIR: join(dir, 'data'), ...env };
  return createGpuActivities(full, loadSettings(full), join(dir, 'audit'));
}

async function refusal(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ApplicationFailure, String(err));
  assert.equal(err.type, SERVICE_NOT_CONFIGURED);
  assert.equal(err.nonRetryable, true);
  return err;
}

test('VRAM per service: its GPUs (by index, by UUID) and the processes on them', async () => {
  const gpu = activities({ KLR_SERVICES_FILE: join(dir, 'services.yaml') });
  assert.deepEqual(
    gpu.services.map((s) => s.name),
    ['llama', 'qwen'],
  );
  const legacy = await gpu.measureVram();
  assert.deepEqual(
    legacy.gpus.map((g) => g.index),
    [0, 1],
    'a legacy id: the legacy service',
  );
  assert.deepEqual(
    legacy.processes.map((p) => p.pid),
    [4_000_001],
  );
  const qwen = await gpu.measureVram({ service: 'qwen' });
  assert.deepEqual(
    qwen.gpus.map((g) => g.index),
    [3],
  );
  assert.deepEqual(
    qwen.processes.map((p) => p.pid),
    [4_000_002],
  );
});

test('a service the host does not run, or a named id for the legacy one, is refused, naming the services', async () => {
  const gpu = activities({ KLR_SERVICES_FILE: join(dir, 'services.yaml') });
  const input = { host: 'h', kind: 'vllm_oom', leaseId: 'l', reason: 'r' };
  assert.match(
    (await refusal(gpu.restoreService({ ...input, service: 'mistral' }))).message,
    /no service "mistral" on this host; services: llama, qwen/,
  );
  assert.match(
    (await refusal(gpu.restoreService({ ...input, service: 'llama' }))).message,
    /"llama" continues the single-service workflows/,
  );
  await refusal(gpu.measureVram({ service: 'mistral' }));
});

test('without a legacy service, a legacy id is refused; without any service, VRAM is still the host’s', async () => {
  const file = join(dir, 'no-legacy.yaml');
  await writeFile(
    file,
    'services:\n  - {name: qwen, config: b.yaml, restart: [/bin/true], url: "http://127.0.0.1:18002", gpus: [3]}\n',
  );
  const gpu = activities({ KLR_SERVICES_FILE: file });
  assert.match(
    (await refusal(gpu.runCanary({} as never))).message,
    /no service on this host continues those ids \(legacyIds: true\); services: qwen/,
  );
  assert.equal((await gpu.measureVram()).gpus.length, 4, 'the host, as before 0.5');
  const none = activities({});
  assert.equal(none.services.length, 0);
  assert.equal((await none.measureVram()).gpus.length, 4);
  assert.match((await refusal(none.predictCandidates({} as never))).message, /no service is configured/);
});
