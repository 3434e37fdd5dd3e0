// `healctl vram` as an operator runs it: a real process, against the stand-in nvidia-smi.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';

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
  execa(process.execPath, ['bin/healctl.js', ...args], {
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
