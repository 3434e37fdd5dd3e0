// An 8-GPU host with several simulated vLLM services sharing one GPU state file: CUDA_VISIBLE_DEVICES (indexes
// and UUIDs), tensor-parallel-size (one worker process per rank, each on its own GPU), the nvidia-smi stand-in
// listing every GPU and process, and each service's share measured with serviceVram (its own processes,
// neighbours). Real simulator processes; every test checks that none is left running.
//
//   node --import tsx --test test/sim/multi-gpu.test.ts
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { simGpuUuid } from '../../sim/lib/gpu-state.js';
import { visibleGpus } from '../../sim/lib/visible-devices.js';
import { serviceVram } from '../../src/domain/service-vram.js';
import type { VramSnapshot } from '../../src/domain/vram-snapshot.js';
import {
  APPS_QUERY_ARGS,
  GPU_QUERY_ARGS,
  parseComputeAppsCsv,
  parseGpuCsv,
} from '../../src/gpu/nvidia-smi.js';
import { readProcStat } from '../../src/service/proc-info.js';
import { isVllmProcess } from '../../src/service/service-process.js';
import { SIM_ARGS, SUPERVISOR_ARGS } from '../support/programs.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NVIDIA_SMI = join(ROOT, 'sim', 'bin', 'nvidia-smi');
const QWEN = join(ROOT, 'sim', 'models', 'qwen2.5-7b.json');
const LIMIT = { timeout: 60_000 };

// ------------------------------------------------------------------ pure: CUDA_VISIBLE_DEVICES

test('CUDA_VISIBLE_DEVICES as CUDA reads it over the simulated GPUs', () => {
  assert.deepEqual(visibleGpus(8, null), [0, 1, 2, 3, 4, 5, 6, 7], 'unset: every GPU');
  assert.deepEqual(visibleGpus(1, undefined), [0], "unset, one GPU: today's default");
  assert.deepEqual(visibleGpus(8, ''), [], 'empty: none');
  assert.deepEqual(visibleGpus(8, '5'), [5]);
  assert.deepEqual(visibleGpus(8, '3,2'), [3, 2], 'in the order given');
  assert.deepEqual(visibleGpus(8, ' 1 , 4 '), [1, 4]);
  assert.deepEqual(visibleGpus(8, `${simGpuUuid(6)},${simGpuUuid(7).toUpperCase()}`), [6, 7], 'UUIDs');
  assert.deepEqual(visibleGpus(8, '1,9,2'), [1], 'an invalid entry hides it and everything after it');
  assert.deepEqual(visibleGpus(8, '1,1'), [1], 'a repeated device is invalid');
  assert.deepEqual(visibleGpus(8, 'GPU-5f3c2a1e'), [], 'a prefix shared by several GPUs is invalid');
  assert.deepEqual(visibleGpus(8, simGpuUuid(4).slice(0, -1)), [], 'also one digit short of the end');
  assert.deepEqual(visibleGpus(16, simGpuUuid(10).slice(0, -1)), [], '…0x…6a and …6b share all but one');
  assert.deepEqual(visibleGpus(2, simGpuUuid(1)), [1]);
  assert.deepEqual(visibleGpus(8, `MIG-${simGpuUuid(0)}/1/0`), [], 'no MIG devices are simulated');
});

// ------------------------------------------------------------------ processes

const pids = new Set<number>();
const dirs: string[] = [];

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitFor<T>(what: string, probe: () => T, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

afterEach(async () => {
  const survivors: number[] = [];
  for (const pid of pids) {
    if (isAlive(pid)) process.kill(pid, 'SIGTERM');
  }
  for (const pid of pids) {
    const gone = await waitFor(`pid ${pid} to exit`, () => !isAlive(pid), 5000).catch(() => false);
    if (!gone) {
      survivors.push(pid);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // raced with its exit
      }
    }
  }
  pids.clear();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(survivors, [], 'processes left running after the test');
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kloros-multi-gpu-'));
  dirs.push(dir);
  return dir;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

interface Sim {
  child: ChildProcess;
  pid: number;
  port: number;
  output: () => string;
  exited: Promise<number | null>;
}

async function startSim(
  dir: string,
  name: string,
  config: Record<string, string | number>,
  env: Record<string, string>,
): Promise<Sim> {
  const port = await freePort();
  const file = join(dir, `${name}.yaml`);
  const values = { host: '127.0.0.1', port, 'served-model-name': name, ...config };
  writeFileSync(
    file,
    Object.entries(values)
      .map(([k, v]) => `${k}: ${v}\n`)
      .join(''),
  );
  const child = spawn(process.execPath, [...SIM_ARGS, '--config', file], {
    cwd: ROOT,
    env: { ...process.env, SIM_STARTUP_MS: '300', SIM_STATS_INTERVAL_MS: '0', SIM_GPU_COUNT: '8', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error('could not start the simulator');
  pids.add(child.pid);
  let text = '';
  child.stdout?.on('data', (c: Buffer) => (text += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, pid: child.pid, port, output: () => text, exited };
}

async function ready(sim: Sim): Promise<void> {
  await waitFor('"Application startup complete."', () => {
    if (sim.child.exitCode !== null) throw new Error(`the simulator exited early:\n${sim.output()}`);
    return sim.output().includes('Application startup complete.');
  });
}

/** What the VRAM activity would measure: the stand-in's two queries, read with the production parser. */
function measure(statePath: string): VramSnapshot {
  const env = { ...process.env, KLR_SIM_GPU_STATE: statePath };
  const gpus = parseGpuCsv(execFileSync(NVIDIA_SMI, [...GPU_QUERY_ARGS], { env, encoding: 'utf8' }));
  const processes = parseComputeAppsCsv(
    execFileSync(NVIDIA_SMI, [...APPS_QUERY_ARGS], { env, encoding: 'utf8' }),
  );
  return { measuredAt: new Date().toISOString(), gpus, processes };
}

/** A process of the service: its main process or a child of it (a rank worker). */
const ownedBy = (main: number) => (p: { pid: number }) =>
  p.pid === main || readProcStat(p.pid)?.ppid === main;

test(
  '8 GPUs, a TP-1 service on GPU 5 and a TP-2 service on GPUs 2-3 by UUID: nvidia-smi and each service’s share',
  LIMIT,
  async () => {
    const dir = tempDir();
    const statePath = join(dir, 'gpu-state.json');
    const llama = await startSim(
      dir,
      'llama',
      { model: 'meta-llama/Llama-3.1-8B-Instruct', 'max-model-len': 8192, 'gpu-memory-utilization': 0.9 },
      { KLR_SIM_GPU_STATE: statePath, CUDA_VISIBLE_DEVICES: '5' },
    );
    await ready(llama);
    const qwen = await startSim(
      dir,
      'qwen',
      {
        model: 'Qwen/Qwen2.5-7B-Instruct',
        'tensor-parallel-size': 2,
        'max-model-len': 32768,
        'gpu-memory-utilization': 0.85,
      },
      {
        KLR_SIM_GPU_STATE: statePath,
        CUDA_VISIBLE_DEVICES: `${simGpuUuid(2)},${simGpuUuid(3)}`,
        SIM_MODEL_PROFILE: QWEN,
      },
    );
    await ready(qwen);

    const host = measure(statePath);
    assert.deepEqual(
      host.gpus.map((g) => g.index),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    const on = (index: number) => host.processes.filter((p) => p.gpuUuid === simGpuUuid(index));
    assert.deepEqual(
      on(5).map((p) => p.pid),
      [llama.pid],
      'TP 1: the one process on its GPU',
    );
    assert.equal(on(5)[0]?.usedMb, Math.floor(0.9 * 81559));
    const ranks = [on(2), on(3)];
    assert.ok(
      ranks.every((r) => r.length === 1),
      JSON.stringify(host.processes),
    );
    const [rank0, rank1] = ranks.map((r) => r[0]!);
    assert.notEqual(rank0!.pid, rank1!.pid, 'one worker process per rank');
    for (const rank of [rank0!, rank1!]) {
      assert.equal(readProcStat(rank.pid)?.ppid, qwen.pid, 'a worker is a child of its server');
      assert.ok(isVllmProcess(rank), 'a worker is recognised as vLLM');
      assert.equal(rank.usedMb, Math.floor(0.85 * 81559));
    }
    for (const i of [0, 1, 4, 6, 7]) {
      assert.deepEqual(on(i), [], `GPU ${i} is free`);
      assert.equal(host.gpus[i]?.usedMb, 0);
    }
    assert.equal(host.gpus[3]?.usedMb, Math.floor(0.85 * 81559));
    assert.match(qwen.output(), /tensor_parallel_size=2/);

    const a = serviceVram(host, { gpus: [5], isOwn: ownedBy(llama.pid), tensorParallelSize: 1 });
    assert.deepEqual(
      a.own.map((p) => p.pid),
      [llama.pid],
    );
    assert.deepEqual(a.neighbours, []);
    assert.deepEqual(a.findings, []);
    const b = serviceVram(host, {
      gpus: [simGpuUuid(2), simGpuUuid(3)],
      isOwn: ownedBy(qwen.pid),
      tensorParallelSize: 2,
    });
    assert.deepEqual(
      b.own.map((p) => p.pid),
      [rank0!.pid, rank1!.pid],
    );
    assert.deepEqual(b.findings, []);
    assert.equal(b.totals.totalMb, 2 * 81559);
    assert.deepEqual(
      b.elsewhere.map((p) => p.pid),
      [llama.pid],
    );

    // The TP-2 service stops: its workers go with it, and their entries leave the state.
    const workers = [rank0!.pid, rank1!.pid];
    qwen.child.kill('SIGTERM');
    assert.equal(await qwen.exited, 0);
    await waitFor('the workers to exit', () => workers.every((pid) => !isAlive(pid)), 5000);
    assert.deepEqual(
      measure(statePath).processes.map((p) => p.pid),
      [llama.pid],
    );
    llama.child.kill('SIGTERM');
    assert.equal(await llama.exited, 0);
  },
);

test(
  'a neighbour on a shared GPU: counted in the free-memory check and named by serviceVram',
  LIMIT,
  async () => {
    const dir = tempDir();
    const statePath = join(dir, 'gpu-state.json');
    // This test process stands in for a notebook holding 6000 MiB on GPU 3.
    writeFileSync(
      statePath,
      JSON.stringify({
        gpus: [],
        processes: [{ pid: process.pid, name: 'jupyter', usedMb: 6000, gpuUuid: simGpuUuid(3) }],
      }),
    );
    const qwen = await startSim(
      dir,
      'qwen',
      { 'tensor-parallel-size': 2, 'max-model-len': 8192, 'gpu-memory-utilization': 0.85 },
      { KLR_SIM_GPU_STATE: statePath, CUDA_VISIBLE_DEVICES: '2,3', SIM_MODEL_PROFILE: QWEN },
    );
    await ready(qwen);
    const host = measure(statePath);
    assert.equal(host.gpus[3]?.usedMb, 6000 + Math.floor(0.85 * 81559));
    const b = serviceVram(host, { gpus: [2, 3], isOwn: ownedBy(qwen.pid), tensorParallelSize: 2 });
    assert.deepEqual(b.findings, [
      {
        code: 'neighbour_on_gpu',
        pid: process.pid,
        processName: 'jupyter',
        usedMb: 6000,
        gpuIndex: 3,
        gpuUuid: simGpuUuid(3),
      },
    ]);
    assert.equal(b.totals.neighbourMb, 6000);
    qwen.child.kill('SIGTERM');
    assert.equal(await qwen.exited, 0);

    // 0.95 of GPU 3 does not fit beside it: vLLM's start-up check, on the rank that shares the GPU.
    const greedy = await startSim(
      dir,
      'greedy',
      { 'tensor-parallel-size': 2, 'max-model-len': 8192, 'gpu-memory-utilization': 0.95 },
      { KLR_SIM_GPU_STATE: statePath, CUDA_VISIBLE_DEVICES: '2,3', SIM_MODEL_PROFILE: QWEN },
    );
    assert.equal(await greedy.exited, 1);
    assert.match(
      greedy.output(),
      /ValueError: Free memory on device \(73\.79\/79\.65 GiB\) on startup is less than desired/,
    );
  },
);

test(
  'more tensor-parallel ranks than visible GPUs, and no visible GPU, fail as vLLM does',
  LIMIT,
  async () => {
    const dir = tempDir();
    const statePath = join(dir, 'gpu-state.json');
    const tp = await startSim(
      dir,
      'tp',
      { 'tensor-parallel-size': 2, 'max-model-len': 8192 },
      { KLR_SIM_GPU_STATE: statePath, CUDA_VISIBLE_DEVICES: '6' },
    );
    assert.equal(await tp.exited, 1);
    assert.match(
      tp.output(),
      /ValueError: World size \(2\) is larger than the number of available GPUs \(1\) in this node\./,
    );
    const none = await startSim(
      dir,
      'none',
      { 'max-model-len': 8192 },
      { KLR_SIM_GPU_STATE: statePath, CUDA_VISIBLE_DEVICES: '9' },
    );
    assert.equal(await none.exited, 1);
    assert.match(none.output(), /RuntimeError: No CUDA GPUs are available/);
    assert.match(none.output(), /Engine core initialization failed/);
  },
);

test(
  'PyTorch names the CUDA device, not the physical GPU: an OOM on GPU 6 reads "GPU 0"',
  LIMIT,
  async () => {
    const dir = tempDir();
    const sim = await startSim(
      dir,
      'oom',
      { 'max-model-len': 8192, 'gpu-memory-utilization': 0.98 },
      { KLR_SIM_GPU_STATE: join(dir, 'gpu-state.json'), CUDA_VISIBLE_DEVICES: '6' },
    );
    await ready(sim);
    const res = await fetch(`http://127.0.0.1:${sim.port}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'oom', prompt: 'hello', max_tokens: 4 }),
    });
    assert.equal(res.status, 500);
    assert.equal(await sim.exited, 1);
    assert.match(sim.output(), /Tried to allocate 2\.00 GiB\. GPU 0 has a total capacity of 79\.65 GiB/);
  },
);

test('V0 keeps rank 0 in the server process and starts workers for the other ranks', LIMIT, async () => {
  const dir = tempDir();
  const statePath = join(dir, 'gpu-state.json');
  const sim = await startSim(
    dir,
    'v0',
    { 'tensor-parallel-size': 2, 'max-model-len': 8192 },
    { KLR_SIM_GPU_STATE: statePath, CUDA_VISIBLE_DEVICES: '6,7', SIM_VLLM_VERSION: '0.6.3.post1' },
  );
  await ready(sim);
  const host = measure(statePath);
  const [rank0, rank1] = [6, 7].map((i) => host.processes.filter((p) => p.gpuUuid === simGpuUuid(i)));
  assert.deepEqual(
    rank0?.map((p) => p.pid),
    [sim.pid],
  );
  assert.equal(rank1?.length, 1);
  assert.equal(readProcStat(rank1[0]!.pid)?.ppid, sim.pid);
  sim.child.kill('SIGTERM');
  assert.equal(await sim.exited, 0);
  assert.deepEqual(measure(statePath).processes, []);
});

test(
  'two supervisors share one state file; a SIGKILLed TP-2 service leaves no worker and no entry',
  LIMIT,
  async () => {
    const dir = tempDir();
    const statePath = join(dir, 'gpu-state.json');
    const env = {
      ...process.env,
      SIM_STARTUP_MS: '300',
      SIM_STATS_INTERVAL_MS: '0',
      SIM_GPU_COUNT: '8',
      KLR_SIM_GPU_STATE: statePath,
    };
    const services = [
      { name: 'a', gpus: '0', tp: 1 },
      { name: 'b', gpus: '1,2', tp: 2 },
    ];
    const supervisors: { stateDir: string; child: ChildProcess; port: number }[] = [];
    for (const s of services) {
      const port = await freePort();
      const config = join(dir, `${s.name}.yaml`);
      writeFileSync(
        config,
        `host: 127.0.0.1\nport: ${port}\nmax-model-len: 8192\ntensor-parallel-size: ${s.tp}\n`,
      );
      const stateDir = join(dir, s.name);
      const child = spawn(
        process.execPath,
        [
          ...SUPERVISOR_ARGS,
          'run',
          '--state-dir',
          stateDir,
          '--',
          process.execPath,
          ...SIM_ARGS,
          '--config',
          config,
        ],
        { cwd: ROOT, env: { ...env, CUDA_VISIBLE_DEVICES: s.gpus }, stdio: 'ignore' },
      );
      if (child.pid !== undefined) pids.add(child.pid);
      supervisors.push({ stateDir, child, port });
      await waitFor(
        `service ${s.name} healthy`,
        () =>
          existsSync(join(stateDir, 'service.log')) &&
          readFileSync(join(stateDir, 'service.log'), 'utf8').includes('Application startup complete.'),
      );
    }
    const state = () => measure(statePath).processes;
    const pidOf = (stateDir: string) => Number(readFileSync(join(stateDir, 'service.pid'), 'utf8'));
    const a = pidOf(supervisors[0]!.stateDir);
    const b = pidOf(supervisors[1]!.stateDir);
    pids.add(a);
    pids.add(b);
    const bWorkers = state()
      .filter((p) => p.pid !== a)
      .map((p) => p.pid);
    assert.equal(bWorkers.length, 2);
    assert.ok(bWorkers.every((pid) => readProcStat(pid)?.ppid === b));
    process.kill(b, 'SIGKILL');
    await waitFor(
      'the killed service’s entries to go',
      () => state().every((p) => p.pid === a) && bWorkers.every((pid) => !isAlive(pid)),
      5000,
    );
    assert.deepEqual(
      state().map((p) => [p.pid, p.gpuUuid]),
      [[a, simGpuUuid(0)]],
    );
    for (const s of supervisors) {
      execFileSync(process.execPath, [...SUPERVISOR_ARGS, 'stop', '--state-dir', s.stateDir], {
        cwd: ROOT,
        env,
      });
    }
    assert.deepEqual(state(), []);
  },
);

test(
  'services starting at the same time lose no entry of one another (the state file’s lock)',
  LIMIT,
  async () => {
    const dir = tempDir();
    const statePath = join(dir, 'gpu-state.json');
    const env = (gpus: string) => ({ KLR_SIM_GPU_STATE: statePath, CUDA_VISIBLE_DEVICES: gpus });
    const sims = await Promise.all([
      startSim(dir, 'a', { 'max-model-len': 8192 }, env('0')),
      startSim(dir, 'b', { 'max-model-len': 8192 }, env('1')),
      startSim(dir, 'c', { 'max-model-len': 8192, 'tensor-parallel-size': 2 }, env('2,3')),
    ]);
    await Promise.all(sims.map((s) => ready(s)));
    const host = measure(statePath);
    assert.deepEqual(
      host.processes.map((p) => host.gpus.find((g) => g.uuid === p.gpuUuid)?.index).sort(),
      [0, 1, 2, 3],
      JSON.stringify(host.processes),
    );
    assert.deepEqual(
      host.gpus.map((g) => g.usedMb),
      [73403, 73403, 73403, 73403, 0, 0, 0, 0],
    );
    for (const s of sims) s.child.kill('SIGTERM');
    assert.deepEqual(await Promise.all(sims.map((s) => s.exited)), [0, 0, 0]);
    assert.deepEqual(measure(statePath).processes, []);
    assert.equal(existsSync(`${statePath}.lock`), false);
  },
);
