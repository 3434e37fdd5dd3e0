// `healctl vram` as an operator runs it: a real process, against the stand-in nvidia-smi.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { HEALCTL_SCRIPT } from '../support/programs.js';

let dir: string;
let state: string;
const standIn = resolve('sim/bin/nvidia-smi');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-healctl-'));
  state = join(dir, 'gpu.json');
  await writeFile(
    state,
    JSON.stringify({
      gpus: [
        {
          index: 0,
          uuid: 'GPU-5f3c0000-1111-2222-3333-444455556666',
          name: 'NVIDIA H100 80GB HBM3',
          totalMb: 81559,
          usedMb: 70000,
          utilizationPct: 41,
        },
      ],
      processes: [
        { pid: 4242, name: 'python3', usedMb: 69500, gpuUuid: 'GPU-5f3c0000-1111-2222-3333-444455556666' },
      ],
    }),
  );
});
after(async () => rm(dir, { recursive: true, force: true }));

const healctl = (args: string[], env: Record<string, string>) =>
  execa(process.execPath, [HEALCTL_SCRIPT, ...args], {
    env: { PATH: '/usr/bin:/bin', ...env },
    extendEnv: false,
    reject: false,
  });

test('prints what the worker would measure, for people and as JSON', async () => {
  const human = await healctl(['vram'], { KLR_NVIDIA_SMI: standIn, KLR_SIM_GPU_STATE: state });
  assert.equal(human.exitCode, 0, human.stderr);
  assert.match(human.stdout, /GPU 0 {2}NVIDIA H100 80GB HBM3/);
  assert.match(human.stdout, /total 81,559 MiB {2}used 70,000 MiB {2}free 11,559 MiB {2}utilization 41 %/);
  assert.match(human.stdout, /pid 4242 {2}python3 {2}69,500 MiB/);
  const json = await healctl(['vram', '--json'], { KLR_NVIDIA_SMI: standIn, KLR_SIM_GPU_STATE: state });
  const parsed = JSON.parse(json.stdout) as { gpus: { freeMb: number }[] };
  assert.equal(parsed.gpus[0]?.freeMb, 11_559);
});

test('fails clearly, exit 1, where there is no nvidia-smi or no GPU', async () => {
  const missing = await healctl(['vram'], {});
  assert.equal(missing.exitCode, 1);
  assert.match(
    missing.stderr,
    /^healctl vram: nvidia-smi not found on PATH: install the NVIDIA driver utilities, or set KLR_NVIDIA_SMI/,
  );
  const noGpu = await healctl(['vram'], {
    KLR_NVIDIA_SMI: standIn,
    KLR_SIM_GPU_STATE: join(dir, 'absent.json'),
  });
  assert.equal(noGpu.exitCode, 1);
  assert.match(noGpu.stderr, /No devices were found/);
});

test('a usage mistake exits 2 with a hint', async () => {
  const r = await healctl(['vramm'], {});
  assert.equal(r.exitCode, 2);
  assert.match(r.stderr, /unknown command 'vramm'/);
});

test('--service shows only that service’s GPUs (KLR_SERVICES_FILE); an unknown or bad name fails', async () => {
  const two = join(dir, 'two-gpus.json');
  const uuid = (n: number) => `GPU-${n}f3c0000-1111-2222-3333-444455556666`;
  await writeFile(
    two,
    JSON.stringify({
      gpus: [0, 1].map((index) => ({
        index,
        uuid: uuid(index),
        name: 'NVIDIA H100 80GB HBM3',
        totalMb: 81559,
        usedMb: index === 0 ? 70000 : 1000,
        utilizationPct: 10,
      })),
      processes: [
        { pid: 4242, name: 'python3', usedMb: 69500, gpuUuid: uuid(0) },
        { pid: 4343, name: 'python3', usedMb: 900, gpuUuid: uuid(1) },
      ],
    }),
  );
  const file = join(dir, 'services.yaml');
  await writeFile(
    file,
    [
      'services:',
      '  - {name: a, config: /etc/vllm/a.yaml, restart: [systemctl, restart, vllm@a], url: "http://127.0.0.1:8001", gpus: [1]}',
      '  - {name: b, config: /etc/vllm/b.yaml, restart: [systemctl, restart, vllm@b], url: "http://127.0.0.1:8002", gpus: [0, 5]}',
      '',
    ].join('\n'),
  );
  const env = { KLR_NVIDIA_SMI: standIn, KLR_SIM_GPU_STATE: two, KLR_SERVICES_FILE: file };
  const a = await healctl(['vram', '--service', 'a', '--json'], env);
  assert.equal(a.exitCode, 0, a.stderr);
  const snap = JSON.parse(a.stdout) as { gpus: { index: number }[]; processes: { pid: number }[] };
  assert.deepEqual(
    snap.gpus.map((g) => g.index),
    [1],
  );
  assert.deepEqual(
    snap.processes.map((p) => p.pid),
    [4343],
  );
  const b = await healctl(['vram', '--service', 'b'], env);
  assert.equal(b.exitCode, 0, b.stderr);
  assert.match(b.stdout, /^GPU 0 /m);
  assert.doesNotMatch(b.stdout, /^GPU 1 /m);
  assert.match(b.stderr, /healctl vram: service b: .*5.* not present/);
  const unknown = await healctl(['vram', '--service', 'c'], env);
  assert.equal(unknown.exitCode, 1);
  assert.match(unknown.stderr, /unknown service "c": this host runs a, b \(--service one of: a, b\)/);
  const bad = await healctl(['vram', '--service', '../x'], env);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /bad --service "\.\.\/x": expected a service name/);
});
