// One service's share of a host's VRAM (src/domain/service-vram.ts): its GPUs by index, UUID, UUID prefix
// and MIG device; own processes, neighbours and the rest; typed findings; and, over seeded random hosts,
// that the restricted totals never exceed the host's and every process lands in exactly one group.
//
//   node --import tsx --test test/unit/service-vram.test.ts
//   KLR_PROPERTY_SEED=1234 …     one seed
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type GpuRef,
  type ServiceVramFinding,
  serviceVram,
  serviceVramFindingText,
} from '../../src/domain/service-vram.js';
import type { GpuMemory, GpuProcess, VramSnapshot } from '../../src/domain/vram-snapshot.js';
import { prng } from '../support/prng.js';

const uuid = (i: number) =>
  `GPU-5f3c2a1e-8d4b-4c6e-9a7f-${(0x1b2c3d4e5f60 + i).toString(16).padStart(12, '0')}`;

function gpu(index: number, usedMb: number, totalMb = 81559): GpuMemory {
  return {
    index,
    uuid: uuid(index),
    name: 'NVIDIA H100 80GB HBM3',
    totalMb,
    usedMb,
    freeMb: totalMb - usedMb,
    utilizationPct: 0,
  };
}

const proc = (pid: number, gpuIndex: number, usedMb: number | null, name = 'python3'): GpuProcess => ({
  pid,
  processName: name,
  usedMb,
  gpuUuid: uuid(gpuIndex),
});

/** An 8-GPU host: a TP-1 service (pid 100) on GPU 0, a TP-2 service (pids 201, 202) on GPUs 2-3. */
function eightGpuHost(extra: GpuProcess[] = []): VramSnapshot {
  const processes = [proc(100, 0, 73403), proc(201, 2, 72000), proc(202, 3, 72000), ...extra];
  const gpus = Array.from({ length: 8 }, (_, i) =>
    gpu(
      i,
      processes.filter((p) => p.gpuUuid === uuid(i)).reduce((s, p) => s + (p.usedMb ?? 0), 0),
    ),
  );
  return { measuredAt: '2026-12-02T03:00:00.000Z', gpus, processes };
}

const pids = (ps: readonly { pid: number }[]) => ps.map((p) => p.pid);
const codes = (fs: readonly ServiceVramFinding[]) => fs.map((f) => f.code);

test('a TP-1 service on GPU 0: its GPU, its process, nothing of the others', () => {
  const v = serviceVram(eightGpuHost(), { gpus: [0], isOwn: (p) => p.pid === 100, tensorParallelSize: 1 });
  assert.deepEqual(
    v.snapshot.gpus.map((g) => g.index),
    [0],
  );
  assert.deepEqual(pids(v.own), [100]);
  assert.deepEqual(v.neighbours, []);
  assert.deepEqual(pids(v.elsewhere), [201, 202]);
  assert.deepEqual(v.findings, []);
  assert.equal(v.totals.totalMb, 81559);
  assert.equal(v.totals.usedMb, 73403);
  assert.equal(v.totals.ownMb, 73403);
  assert.equal(v.totals.minFreeMb, 81559 - 73403);
});

test('a TP-2 service by UUID: both GPUs, one process per rank, totals summed, the tightest GPU', () => {
  const host = eightGpuHost([proc(300, 3, 4000, 'python')]);
  const v = serviceVram(host, {
    gpus: [uuid(2), uuid(3)],
    isOwn: (p) => p.pid === 201 || p.pid === 202,
    tensorParallelSize: 2,
  });
  assert.deepEqual(
    v.devices.map((d) => [d.gpu.index, d.ownMb, d.neighbourMb]),
    [
      [2, 72000, 0],
      [3, 72000, 4000],
    ],
  );
  assert.deepEqual(pids(v.own), [201, 202]);
  assert.deepEqual(
    v.neighbours.map((n) => [n.process.pid, n.gpuIndex]),
    [[300, 3]],
  );
  assert.equal(v.totals.totalMb, 2 * 81559);
  assert.equal(v.totals.usedMb, 72000 + 76000);
  assert.equal(v.totals.minFreeMb, 81559 - 76000);
  assert.equal(v.totals.neighbourMb, 4000);
  assert.deepEqual(pids(v.snapshot.processes), [201, 202, 300]);
});

test('a neighbour holding memory on one of its GPUs is named: pid, name, MiB, GPU', () => {
  const host = eightGpuHost([proc(555, 0, 10000, 'jupyter'), proc(556, 0, 0, 'idle')]);
  const v = serviceVram(host, { gpus: [0], isOwn: (p) => p.pid === 100 });
  assert.deepEqual(v.findings, [
    {
      code: 'neighbour_on_gpu',
      pid: 555,
      processName: 'jupyter',
      usedMb: 10000,
      gpuIndex: 0,
      gpuUuid: uuid(0),
    },
  ]);
  assert.deepEqual(
    pids(v.neighbours.map((n) => n.process)),
    [555, 556],
    'a neighbour holding 0 MiB is listed',
  );
  assert.equal(
    serviceVramFindingText(v.findings[0]!),
    "jupyter (pid 555), not this service's, holds 10000 MiB on GPU 0",
  );
});

test('another service on a shared GPU is a neighbour; unreported memory is named as such', () => {
  const host = eightGpuHost([proc(700, 2, null, '[Insufficient Permissions]')]);
  const v = serviceVram(host, { gpus: [2, 3], isOwn: (p) => p.pid === 201 || p.pid === 202 });
  const f = v.findings.find((x) => x.code === 'neighbour_on_gpu');
  assert.ok(f && f.code === 'neighbour_on_gpu');
  assert.equal(f.usedMb, null);
  assert.match(serviceVramFindingText(f), /an unreported amount of memory on GPU 2/);
  assert.equal(v.totals.neighbourMb, 0);
});

test('a GPU the host lacks is a typed problem: "gpu 7 not present: the host has 0-3"', () => {
  const host: VramSnapshot = { measuredAt: 'x', gpus: [0, 1, 2, 3].map((i) => gpu(i, 0)), processes: [] };
  const v = serviceVram(host, { gpus: [2, 7], isOwn: () => false });
  assert.deepEqual(v.findings, [{ code: 'gpu_not_present', ref: 7, hostIndexes: [0, 1, 2, 3] }]);
  assert.equal(serviceVramFindingText(v.findings[0]!), 'gpu 7 not present: the host has 0-3');
  assert.deepEqual(
    v.devices.map((d) => d.gpu.index),
    [2],
  );
  const none = serviceVram(
    { measuredAt: 'x', gpus: [], processes: [] },
    { gpus: ['GPU-abcd'], isOwn: () => false },
  );
  assert.equal(serviceVramFindingText(none.findings[0]!), 'gpu GPU-abcd not present: the host has no GPU');
  const gaps = serviceVram(
    { measuredAt: 'x', gpus: [0, 1, 2, 5, 7].map((i) => gpu(i, 0)), processes: [] },
    { gpus: [3], isOwn: () => false },
  );
  assert.equal(serviceVramFindingText(gaps.findings[0]!), 'gpu 3 not present: the host has 0-2, 5, 7');
});

test('UUIDs: exact, a unique prefix (as CUDA_VISIBLE_DEVICES allows), case, an ambiguous prefix', () => {
  const host = eightGpuHost();
  const exact = serviceVram(host, { gpus: [uuid(3).toUpperCase()], isOwn: () => false });
  assert.deepEqual(
    exact.devices.map((d) => d.gpu.index),
    [3],
  );
  const prefix = serviceVram(host, { gpus: [uuid(5).slice(0, -1)], isOwn: () => false });
  // every simulated UUID shares all but its last digit: that prefix is ambiguous
  assert.deepEqual(codes(prefix.findings), ['gpu_ref_ambiguous']);
  assert.match(serviceVramFindingText(prefix.findings[0]!), /is ambiguous: .* GPUs 0-7$/);
  const real: VramSnapshot = {
    measuredAt: 'x',
    gpus: [
      { ...gpu(0, 0), uuid: 'GPU-8932f937-d72c-4106-c12f-20bd9faed9f6' },
      { ...gpu(1, 0), uuid: 'GPU-1d3b1a62-0c4c-a7b1-4bc0-0f8ec9b0e1c2' },
    ],
    processes: [],
  };
  const short = serviceVram(real, { gpus: ['GPU-8932f937'], isOwn: () => false });
  assert.deepEqual(
    short.devices.map((d) => d.gpu.index),
    [0],
  );
  assert.deepEqual(short.findings, []);
  const digits = serviceVram(real, { gpus: ['1'], isOwn: () => false });
  assert.deepEqual(
    digits.devices.map((d) => d.gpu.index),
    [1],
    'an index given as text is an index',
  );
});

test('the same GPU named twice (index and UUID) counts once', () => {
  const v = serviceVram(eightGpuHost(), { gpus: [0, uuid(0)], isOwn: (p) => p.pid === 100 });
  assert.equal(v.devices.length, 1);
  assert.equal(v.totals.totalMb, 81559);
});

test('null GPUs: every GPU of the host (the one-service shortcut)', () => {
  const host = eightGpuHost([proc(9, 5, 100)]);
  const v = serviceVram(host, { gpus: null, isOwn: (p) => p.pid === 100 });
  assert.equal(v.devices.length, 8);
  assert.deepEqual(pids(v.own), [100]);
  assert.deepEqual(pids(v.neighbours.map((n) => n.process)), [201, 202, 9]);
  assert.deepEqual(v.elsewhere, []);
});

test('tensor parallelism: the ranks occupy the first TP GPUs; more ranks than GPUs is a finding', () => {
  const host = eightGpuHost();
  const v = serviceVram(host, { gpus: [2, 3, 4], isOwn: () => false, tensorParallelSize: 2 });
  assert.deepEqual(
    v.rankDevices.map((d) => d.gpu.index),
    [2, 3],
  );
  const over = serviceVram(host, { gpus: [6], isOwn: () => false, tensorParallelSize: 2 });
  assert.deepEqual(over.findings, [{ code: 'tensor_parallel_above_gpus', tensorParallelSize: 2, gpus: 1 }]);
  assert.equal(
    serviceVramFindingText(over.findings[0]!),
    'tensor-parallel-size 2 needs 2 GPUs; the service has 1',
  );
});

test('its own process on a GPU that is not its own is a finding (CUDA_VISIBLE_DEVICES not applied?)', () => {
  const v = serviceVram(eightGpuHost([proc(100, 4, 600)]), { gpus: [0], isOwn: (p) => p.pid === 100 });
  assert.deepEqual(v.findings, [
    { code: 'own_process_outside', pid: 100, usedMb: 600, gpuUuid: uuid(4), gpuIndex: 4 },
  ]);
  assert.equal(v.totals.ownMb, 73403);
});

test('MIG: R450 device names resolve to their parent; instances of one parent count it once', () => {
  const parent = uuid(1);
  const migA = `MIG-${parent}/1/0`;
  const migB = `MIG-${parent}/2/0`;
  const host: VramSnapshot = {
    measuredAt: 'x',
    gpus: [gpu(0, 0), gpu(1, 30000)],
    processes: [
      { pid: 1, processName: 'python3', usedMb: 10000, gpuUuid: migA },
      { pid: 2, processName: 'python3', usedMb: 20000, gpuUuid: migB },
    ],
  };
  const a = serviceVram(host, { gpus: [migA], isOwn: (p) => p.pid === 1 });
  assert.deepEqual(pids(a.own), [1]);
  assert.deepEqual(a.neighbours, [], 'another MIG instance is isolated memory, not a neighbour');
  assert.deepEqual(pids(a.elsewhere), [2]);
  assert.equal(a.devices[0]?.migDevice, migA.toLowerCase());
  const both = serviceVram(host, { gpus: [migA, migB], isOwn: () => true });
  assert.equal(both.snapshot.gpus.length, 1);
  assert.equal(both.totals.totalMb, 81559);
  const whole = serviceVram(host, { gpus: [1], isOwn: (p) => p.pid === 1 });
  assert.deepEqual(
    pids(whole.neighbours.map((n) => n.process)),
    [2],
    'the whole GPU holds all its instances',
  );
});

test('MIG: newer MIG-<uuid> devices have no parent in the snapshot: counted, flagged', () => {
  const mig = 'MIG-7e0f24a5-6c70-5b8f-9a42-1f4d3c2b1a09';
  const host: VramSnapshot = {
    measuredAt: 'x',
    gpus: [gpu(0, 5000)],
    processes: [{ pid: 42, processName: 'python3', usedMb: 5000, gpuUuid: mig }],
  };
  const v = serviceVram(host, { gpus: [mig], isOwn: (p) => p.pid === 42, tensorParallelSize: 1 });
  assert.deepEqual(pids(v.own), [42]);
  assert.deepEqual(codes(v.findings), ['mig_device_unplaced']);
  assert.match(serviceVramFindingText(v.findings[0]!), /1 process on it/);
  assert.equal(v.totals.totalMb, 0);
});

test('a GPU that does not report memory: totals are null, never 0', () => {
  const host: VramSnapshot = {
    measuredAt: 'x',
    gpus: [{ ...gpu(0, 0), totalMb: null, usedMb: null, freeMb: null }, gpu(1, 0)],
    processes: [],
  };
  const v = serviceVram(host, { gpus: [0, 1], isOwn: () => false });
  assert.equal(v.totals.totalMb, null);
  assert.equal(v.totals.freeMb, null);
  assert.equal(v.totals.minFreeMb, null);
  assert.equal(serviceVram(host, { gpus: [1], isOwn: () => false }).totals.totalMb, 81559);
});

// ------------------------------------------------------------------ property

function randomHost(r: ReturnType<typeof prng>): {
  host: VramSnapshot;
  refs: GpuRef[] | null;
  own: Set<number>;
} {
  const count = r.int(0, 8);
  const gpus: GpuMemory[] = Array.from({ length: count }, (_, i) => {
    const g = gpu(i, r.int(0, 81559), r.chance(0.1) ? 40960 : 81559);
    if (r.chance(0.05)) return { ...g, totalMb: null, usedMb: null, freeMb: null };
    return {
      ...g,
      usedMb: Math.min(g.usedMb!, g.totalMb!),
      freeMb: g.totalMb! - Math.min(g.usedMb!, g.totalMb!),
    };
  });
  const processes: GpuProcess[] = Array.from({ length: r.int(0, 20) }, () => {
    const pid = r.int(1, 40);
    const where = r.weighted<string | null>([
      [8, count > 0 ? uuid(r.int(0, count - 1)) : null],
      [1, null],
      [1, uuid(r.int(8, 12))],
      [1, `MIG-${uuid(r.int(0, 9))}/${r.int(1, 3)}/0`],
      [1, `MIG-7e0f24a5-6c70-5b8f-9a42-${r.int(0, 3)}`],
    ]);
    return {
      pid,
      processName: r.pick(['python3', null, 'X']),
      usedMb: r.chance(0.1) ? null : r.int(0, 20000),
      gpuUuid: where,
    };
  });
  const refs: GpuRef[] | null = r.chance(0.15)
    ? null
    : Array.from({ length: r.int(1, 5) }, () =>
        r.weighted<GpuRef>([
          [6, r.int(0, 9)],
          [3, uuid(r.int(0, 9))],
          [1, uuid(0).slice(0, r.int(4, 40))],
          [1, `MIG-${uuid(r.int(0, 9))}/${r.int(1, 3)}/0`],
          [1, `MIG-7e0f24a5-6c70-5b8f-9a42-${r.int(0, 3)}`],
        ]),
      );
  const own = new Set(Array.from({ length: r.int(0, 5) }, () => r.int(1, 40)));
  return { host: { measuredAt: 'x', gpus, processes }, refs, own };
}

test('property: restricted totals never exceed the host; every process in exactly one group', () => {
  const fixed = process.env.KLR_PROPERTY_SEED;
  const seeds = fixed ? [Number(fixed)] : Array.from({ length: 2000 }, (_, i) => 0x5e4 + i * 7919);
  const sum = (vs: (number | null)[]) => vs.reduce<number>((s, v) => s + (v ?? 0), 0);
  for (const seed of seeds) {
    const { host, refs, own } = randomHost(prng(seed));
    const tp = prng(seed ^ 0xabc).int(1, 4);
    const v = serviceVram(host, { gpus: refs, isOwn: (p) => own.has(p.pid), tensorParallelSize: tp });
    const at = `seed ${seed}`;
    for (const key of ['totalMb', 'usedMb', 'freeMb'] as const) {
      const t = v.totals[key];
      if (t !== null)
        assert.ok(t <= sum(host.gpus.map((g) => g[key])), `${at}: ${key} ${t} above the host's`);
    }
    assert.ok(v.totals.ownMb + v.totals.neighbourMb <= sum(host.processes.map((p) => p.usedMb)), at);
    assert.ok(
      v.snapshot.gpus.every((g) => host.gpus.includes(g)),
      `${at}: a GPU the host lacks`,
    );
    assert.equal(new Set(v.snapshot.gpus).size, v.snapshot.gpus.length, `${at}: a GPU counted twice`);
    for (const p of host.processes) {
      const groups = [v.own.includes(p), v.neighbours.some((n) => n.process === p), v.elsewhere.includes(p)];
      assert.equal(
        groups.filter(Boolean).length,
        1,
        `${at}: pid ${p.pid} on ${p.gpuUuid} in ${groups.join(',')}`,
      );
    }
    assert.equal(v.own.length + v.neighbours.length + v.elsewhere.length, host.processes.length, at);
    assert.ok(v.own.every((p) => own.has(p.pid)) && v.neighbours.every((n) => !own.has(n.process.pid)), at);
    assert.equal(v.snapshot.processes.length, v.own.length + v.neighbours.length, at);
    assert.ok(v.rankDevices.length <= Math.min(tp, v.devices.length), at);
    for (const f of v.findings) assert.equal(typeof serviceVramFindingText(f), 'string', at);
  }
});
