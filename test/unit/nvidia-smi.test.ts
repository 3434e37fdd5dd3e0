// nvidia-smi: parsing its CSV (from outputs in its real formats), naming its failures, and measureVram
// against the stand-in (sim/bin/nvidia-smi) run as a real process.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { ApplicationFailure } from '@temporalio/common';
import {
  APPS_QUERY_ARGS,
  GPU_QUERY_ARGS,
  NvidiaSmiError,
  type NvidiaSmiErrorCode,
  type NvidiaSmiRun,
  classifyNvidiaSmiFailure,
  parseComputeAppsCsv,
  parseGpuCsv,
} from '../../src/gpu/nvidia-smi.js';
import {
  NVIDIA_SMI_FAILED,
  createMeasureVram,
  measureVramOnce,
  toApplicationFailure,
} from '../../src/activities/measure-vram.js';
import { VRAM_UNAVAILABLE, type GpuMemory } from '../../src/activities/types.js';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const fixtures = join(root, 'test/fixtures/nvidia-smi');
const standIn = join(root, 'sim/bin/nvidia-smi');
const fixture = (name: string) => readFile(join(fixtures, name), 'utf8');

const H100 = 'GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16';

function gpu(partial: Partial<GpuMemory> & { index: number }): GpuMemory {
  return {
    uuid: null,
    name: null,
    totalMb: null,
    usedMb: null,
    freeMb: null,
    utilizationPct: null,
    ...partial,
  };
}

function unparseable(fn: () => unknown, quoted: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof NvidiaSmiError, `expected NvidiaSmiError, got ${String(err)}`);
    assert.equal(err.code, 'unparseable');
    if (typeof quoted === 'string') assert.ok(err.message.includes(quoted), err.message);
    else assert.match(err.message, quoted);
    return true;
  });
}

describe('the queries', () => {
  test('ask nvidia-smi for exactly the columns the parsers read, without header or units', () => {
    assert.deepEqual(GPU_QUERY_ARGS, [
      '--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu',
      '--format=csv,noheader,nounits',
    ]);
    assert.deepEqual(APPS_QUERY_ARGS, [
      '--query-compute-apps=pid,process_name,used_memory,gpu_uuid',
      '--format=csv,noheader,nounits',
    ]);
  });
});

describe('parseGpuCsv', () => {
  test('one H100: free memory is what nvidia-smi reports, not total − used (reserved memory)', async () => {
    assert.deepEqual(parseGpuCsv(await fixture('h100-single.gpu.csv')), [
      gpu({
        index: 0,
        uuid: H100,
        name: 'NVIDIA H100 80GB HBM3',
        totalMb: 81559,
        usedMb: 72345,
        freeMb: 8676,
        utilizationPct: 96,
      }),
    ]);
  });

  test('an idle A100 reports 0 % and a few MiB as numbers, not as missing', async () => {
    const [a100] = parseGpuCsv(await fixture('a100-idle.gpu.csv'));
    assert.equal(a100?.utilizationPct, 0);
    assert.equal(a100?.usedMb, 4);
    assert.equal(a100?.name, 'NVIDIA A100-SXM4-40GB');
  });

  test('eight GPUs, in order, despite trailing spaces and blank lines', async () => {
    const gpus = parseGpuCsv(await fixture('dgx-h100-8gpu.gpu.csv'));
    assert.deepEqual(
      gpus.map((g) => g.index),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    assert.deepEqual(gpus[4], {
      index: 4,
      uuid: 'GPU-20bed2f5-819b-69ad-8d42-d3e1446080c1',
      name: 'NVIDIA H100 80GB HBM3',
      totalMb: 81559,
      usedMb: 3,
      freeMb: 81018,
      utilizationPct: 0,
    });
    assert.equal(gpus[7]?.freeMb, 19);
    assert.equal(gpus[7]?.utilizationPct, 100);
  });

  test('Windows output (CRLF) parses like Linux output', async () => {
    // CRLF made explicit: a checkout with core.autocrlf may have turned the fixture's CRLF into LF.
    const crlf = (await fixture('rtx4090-windows.gpu.csv')).replace(/\r?\n/g, '\r\n');
    const [rtx] = parseGpuCsv(crlf);
    assert.equal(rtx?.name, 'NVIDIA GeForce RTX 4090');
    assert.equal(rtx?.utilizationPct, 99);
  });

  test('[Not Supported] becomes null, never 0', async () => {
    const [gtx] = parseGpuCsv(await fixture('geforce-legacy.gpu.csv'));
    assert.equal(gtx?.utilizationPct, null);
    assert.equal(gtx?.totalMb, 1998);
  });

  test('a Jetson-like GPU that reports only its name: every [N/A] is null', async () => {
    assert.deepEqual(parseGpuCsv(await fixture('jetson-orin.gpu.csv')), [
      gpu({ index: 0, name: 'Orin (nvgpu)' }),
    ]);
  });

  test('MIG: the parent GPU keeps its memory figures, its utilization is [N/A] → null', async () => {
    const [mig, plain] = parseGpuCsv(await fixture('a100-mig.gpu.csv'));
    assert.equal(mig?.utilizationPct, null);
    assert.equal(mig?.usedMb, 36537);
    assert.equal(mig?.freeMb, 44752);
    assert.equal(plain?.utilizationPct, 41);
  });

  test('every marker nvidia-smi uses for a missing value is null', () => {
    for (const marker of [
      '[N/A]',
      'N/A',
      '[Not Supported]',
      '[Insufficient Permissions]',
      '[Unknown Error]',
    ]) {
      const [g] = parseGpuCsv(
        `3, ${H100}, NVIDIA H100 80GB HBM3, ${marker}, ${marker}, ${marker}, ${marker}\n`,
      );
      assert.deepEqual(g, gpu({ index: 3, uuid: H100, name: 'NVIDIA H100 80GB HBM3' }), marker);
    }
  });

  test('a name with commas stays whole and the columns after it do not shift', async () => {
    const [g] = parseGpuCsv(await fixture('name-with-commas.gpu.csv'));
    assert.equal(g?.name, 'NVIDIA Custom, Board 2, Rev. B');
    assert.equal(g?.totalMb, 49140);
    assert.equal(g?.usedMb, 1203);
    assert.equal(g?.freeMb, 47418);
    assert.equal(g?.utilizationPct, 5);
  });

  test("nvidia-smi's infoROM warning line is not taken for a GPU", async () => {
    const gpus = parseGpuCsv(await fixture('inforom-warning.gpu.csv'));
    assert.equal(gpus.length, 1);
    assert.equal(gpus[0]?.name, 'Tesla T4');
  });

  test('trailing whitespace and blank lines between and after rows are not data', () => {
    const gpus = parseGpuCsv(
      `\n0, ${H100}, H100, 1, 2, 3, 4   \t\n\n   \n1, ${H100}, H100, 5, 6, 7, 8\n\n\n`,
    );
    assert.deepEqual(
      gpus.map((g) => [g.index, g.utilizationPct]),
      [
        [0, 4],
        [1, 8],
      ],
    );
  });

  test('empty or blank output is no GPU (the caller decides what that means)', () => {
    assert.deepEqual(parseGpuCsv(''), []);
    assert.deepEqual(parseGpuCsv('\n  \n'), []);
  });
});

describe('parseComputeAppsCsv', () => {
  test('one vLLM engine process', async () => {
    assert.deepEqual(parseComputeAppsCsv(await fixture('h100-single.apps.csv')), [
      { pid: 2473, processName: 'VLLM::EngineCore', usedMb: 72336, gpuUuid: H100 },
    ]);
  });

  test('no compute process: empty output, or the sentence some versions print', async () => {
    assert.deepEqual(parseComputeAppsCsv(await fixture('a100-idle.apps.csv')), []);
    assert.deepEqual(parseComputeAppsCsv('No running processes found\n'), []);
  });

  test('processes over eight GPUs, blank lines ignored', async () => {
    const procs = parseComputeAppsCsv(await fixture('dgx-h100-8gpu.apps.csv'));
    assert.equal(procs.length, 6);
    assert.deepEqual(procs[5], {
      pid: 121007,
      processName: '/opt/conda/bin/python',
      usedMb: 80992,
      gpuUuid: 'GPU-8932f937-d72c-4106-c12f-20bd9faed9f6',
    });
  });

  test('Windows (WDDM): per-process memory [N/A] is null, paths with spaces stay whole', async () => {
    const procs = parseComputeAppsCsv((await fixture('rtx4090-windows.apps.csv')).replace(/\r?\n/g, '\r\n'));
    assert.deepEqual(procs[0], {
      pid: 14120,
      processName: 'C:\\Program Files\\Python311\\python.exe',
      usedMb: null,
      gpuUuid: 'GPU-3b4cd1ec-5f0a-e7a4-38aa-37f5b47c8d2e',
    });
    assert.equal(procs.length, 2);
  });

  test('[Not Supported] process memory is null', async () => {
    const [xorg] = parseComputeAppsCsv(await fixture('geforce-legacy.apps.csv'));
    assert.equal(xorg?.usedMb, null);
    assert.equal(xorg?.processName, '/usr/lib/xorg/Xorg');
  });

  test('MIG: processes carry the parent GPU UUID; an [N/A] amount is null', async () => {
    const procs = parseComputeAppsCsv(await fixture('a100-mig.apps.csv'));
    assert.equal(procs.filter((p) => p.gpuUuid === H100).length, 4);
    assert.equal(procs.find((p) => p.pid === 42859)?.usedMb, null);
    assert.equal(procs.find((p) => p.pid === 56597)?.usedMb, 149);
  });

  test('MIG device UUIDs in both the R470+ and the R450 shape', async () => {
    const procs = parseComputeAppsCsv(await fixture('mig-device-uuids.apps.csv'));
    assert.deepEqual(
      procs.map((p) => p.gpuUuid),
      ['MIG-feb88891-0321-5fef-9c87-d4af3b54259e', 'MIG-GPU-932bfb2c-849a-2a22-1e84-9eff6bc02b39/1/0'],
    );
  });

  test('a process name hidden from a container is null, its memory is still read', async () => {
    assert.deepEqual(parseComputeAppsCsv(await fixture('container.apps.csv')), [
      { pid: 524, processName: null, usedMb: 5910, gpuUuid: 'GPU-20bed2f5-819b-69ad-8d42-d3e1446080c1' },
    ]);
  });

  test('a process path with commas stays whole', async () => {
    const [p] = parseComputeAppsCsv(await fixture('name-with-commas.apps.csv'));
    assert.equal(p?.processName, '/opt/serve,v2/bin/server');
    assert.equal(p?.usedMb, 1180);
  });
});

describe('unparseable output', () => {
  test('a header and units (--format=csv) are rejected, quoting the line', async () => {
    const text = await fixture('with-header-and-units.gpu.csv');
    unparseable(() => parseGpuCsv(text), 'line 1 "index, uuid, name, memory.total [MiB]');
  });

  test('units in a value are rejected', () => {
    const line = `0, ${H100}, NVIDIA H100 80GB HBM3, 81559 MiB, 72345 MiB, 8676 MiB, 96 %`;
    unparseable(() => parseGpuCsv(line), /memory\.total is "81559 MiB", not a number/);
  });

  test('too few columns: the bad line is quoted with its number', () => {
    unparseable(
      () => parseGpuCsv(`0, ${H100}, NVIDIA H100 80GB HBM3, 81559, 1, 2, 3\n1, GPU-x, 5\n`),
      'line 2 "1, GPU-x, 5"',
    );
    unparseable(() => parseComputeAppsCsv('123, python3, 70000\n'), 'line 1 "123, python3, 70000"');
  });

  test('a failure text in place of data is not silently taken for data', () => {
    unparseable(() => parseGpuCsv('No devices were found\n'), 'No devices were found');
    unparseable(
      () => parseComputeAppsCsv('Failed to initialize NVML: Driver/library version mismatch\n'),
      'Driver/library version mismatch',
    );
  });

  test('a UUID column that is not a UUID (columns shifted or wrong query)', () => {
    unparseable(() => parseComputeAppsCsv('123, python3, 70000, 0\n'), /gpu_uuid is "0"/);
  });

  test('negative or non-numeric figures and a non-integer index', () => {
    unparseable(() => parseGpuCsv(`0, ${H100}, H100, -1, 2, 3, 4`), /memory\.total/);
    unparseable(() => parseGpuCsv(`x, ${H100}, H100, 1, 2, 3, 4`), /index is "x"/);
    unparseable(() => parseComputeAppsCsv(`[N/A], python3, 1, ${H100}`), /pid is "\[N\/A\]"/);
  });
});

describe('classifyNvidiaSmiFailure', () => {
  const run = (over: Partial<NvidiaSmiRun>): NvidiaSmiRun => ({
    exitCode: 1,
    stdout: '',
    stderr: '',
    timedOut: false,
    notFound: false,
    ...over,
  });
  const cases: [string, () => Promise<NvidiaSmiRun>, NvidiaSmiErrorCode, RegExp][] = [
    [
      'driver/library mismatch (stdout, exit 18)',
      async () => run({ exitCode: 18, stdout: await fixture('driver-mismatch.stdout.txt') }),
      'driver_mismatch',
      /Driver\/library version mismatch.*reboot the host, or reload the nvidia kernel modules/,
    ],
    [
      'driver unreachable (stdout, exit 9)',
      async () => run({ exitCode: 9, stdout: await fixture('driver-unreachable.stdout.txt') }),
      'driver_unreachable',
      /couldn't communicate with the NVIDIA driver.*lsmod/,
    ],
    [
      'no devices (stdout, exit 6)',
      async () => run({ exitCode: 6, stdout: await fixture('no-devices.stdout.txt') }),
      'no_devices',
      /No devices were found/,
    ],
    [
      'no devices, printed on stderr by a wrapper',
      async () => run({ exitCode: 6, stderr: 'No devices were found\n' }),
      'no_devices',
      /No devices were found/,
    ],
    [
      'NVML library missing (exit 12)',
      async () => run({ exitCode: 12, stdout: await fixture('nvml-missing.stdout.txt') }),
      'not_installed',
      /libnvidia-ml\.so/,
    ],
    ['mismatch known by its exit code alone', async () => run({ exitCode: 18 }), 'driver_mismatch', /reboot/],
    [
      'driver not loaded known by its exit code alone',
      async () => run({ exitCode: 9 }),
      'driver_unreachable',
      /driver/,
    ],
    [
      'not on PATH',
      async () => run({ exitCode: null, notFound: true }),
      'not_installed',
      /^nvidia-smi not found on PATH: install the NVIDIA driver utilities, or set KLR_NVIDIA_SMI to its path$/,
    ],
    [
      'not at the configured path',
      async () => run({ exitCode: null, notFound: true, command: '/opt/nv/nvidia-smi' }),
      'not_installed',
      /^nvidia-smi not found at "\/opt\/nv\/nvidia-smi" \(KLR_NVIDIA_SMI\)/,
    ],
    [
      'timed out',
      async () => run({ exitCode: null, timedOut: true, signal: 'SIGTERM', timeoutMs: 10_000 }),
      'timeout',
      /did not answer within 10 s and was killed/,
    ],
    [
      'timeout wins over the text a killed process left',
      async () => run({ exitCode: null, timedOut: true, stdout: 'No devices were found\n', timeoutMs: 1500 }),
      'timeout',
      /within 1\.5 s/,
    ],
    [
      'a lost GPU: failed, with the exit code and the first line',
      async () => run({ exitCode: 15, stdout: await fixture('gpu-lost.stdout.txt') }),
      'failed',
      /^nvidia-smi exited with code 15: Unable to determine the device handle for GPU0000:3B:00\.0: Unknown Error$/,
    ],
    [
      'anything else: the first stderr line',
      async () => run({ exitCode: 3, stdout: 'data\n', stderr: '\nsomething broke\nmore\n' }),
      'failed',
      /^nvidia-smi exited with code 3: something broke$/,
    ],
    [
      'killed by a signal',
      async () => run({ exitCode: null, signal: 'SIGSEGV' }),
      'failed',
      /was killed by SIGSEGV/,
    ],
    [
      'not executable',
      async () => run({ exitCode: null, spawnError: 'EACCES', command: '/tmp/nvidia-smi' }),
      'failed',
      /\/tmp\/nvidia-smi could not be started \(EACCES\): is it executable\?/,
    ],
  ];
  for (const [name, make, code, message] of cases) {
    test(name, async () => {
      const err = classifyNvidiaSmiFailure(await make());
      assert.ok(err instanceof NvidiaSmiError);
      assert.equal(err.code, code);
      assert.match(err.message, message);
    });
  }

  test('keeps the exit code', () => {
    assert.equal(classifyNvidiaSmiFailure(run({ exitCode: 18 })).exitCode, 18);
  });
});

describe('toApplicationFailure', () => {
  const expected: [NvidiaSmiErrorCode, string, boolean][] = [
    ['not_installed', VRAM_UNAVAILABLE, true],
    ['no_devices', VRAM_UNAVAILABLE, true],
    ['driver_mismatch', VRAM_UNAVAILABLE, true],
    ['driver_unreachable', NVIDIA_SMI_FAILED, false],
    ['timeout', NVIDIA_SMI_FAILED, false],
    ['unparseable', NVIDIA_SMI_FAILED, false],
    ['failed', NVIDIA_SMI_FAILED, false],
  ];
  for (const [code, type, nonRetryable] of expected) {
    test(`${code} → ${type}${nonRetryable ? ', not retried' : ', retried'}`, () => {
      const failure = toApplicationFailure(new NvidiaSmiError(code, `msg ${code}`, 7));
      assert.ok(failure instanceof ApplicationFailure);
      assert.equal(failure.type, type);
      assert.equal(failure.nonRetryable, nonRetryable);
      assert.equal(failure.message, `msg ${code}`);
      assert.deepEqual(failure.details, [{ code, exitCode: 7 }]);
    });
  }

  test("an error that is not nvidia-smi's is passed through unchanged", () => {
    const bug = new TypeError('bug');
    assert.equal(toApplicationFailure(bug), bug);
  });
});

// ---- the stand-in, as a real process ---------------------------------------------------------------------

const SIM_VARS = ['KLR_SIM_GPU_STATE', 'KLR_SIM_NVIDIA_SMI_FAIL', 'KLR_NVIDIA_SMI', 'PATH'] as const;

describe('the nvidia-smi stand-in and measureVram', () => {
  const T = { timeout: 20_000 };
  let dir: string;
  let statePath: string;
  const saved: Record<string, string | undefined> = {};

  const state = {
    gpus: [
      {
        index: 0,
        uuid: H100,
        name: 'NVIDIA H100 80GB HBM3',
        totalMb: 81559,
        usedMb: 71234,
        utilizationPct: 37,
      },
      {
        index: 1,
        uuid: 'GPU-d8594bd4-0fc3-8595-e355-7c98138f3b95',
        name: 'NVIDIA A100-SXM4-80GB, MIG',
        totalMb: 81920,
        usedMb: 100,
        utilizationPct: null,
      },
    ],
    processes: [
      { pid: 4242, name: 'VLLM::EngineCore', usedMb: 70000, gpuUuid: H100 },
      { pid: 4343, name: 'python3', usedMb: null, gpuUuid: 'GPU-d8594bd4-0fc3-8595-e355-7c98138f3b95' },
    ],
  };

  before(async () => {
    for (const v of SIM_VARS) saved[v] = process.env[v];
    dir = await mkdtemp(join(tmpdir(), 'klr-nvidia-smi-'));
    statePath = join(dir, 'gpu-state.json');
    await writeFile(statePath, JSON.stringify(state));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  /** Each test sets what it needs; everything else is as the test runner started. */
  function env(vars: Partial<Record<(typeof SIM_VARS)[number], string | undefined>>): void {
    for (const v of SIM_VARS) {
      const value = v in vars ? vars[v] : saved[v];
      if (value === undefined) delete process.env[v];
      else process.env[v] = value;
    }
  }

  async function rejectsWith(
    promise: Promise<unknown>,
    code: NvidiaSmiErrorCode,
    message?: RegExp,
  ): Promise<void> {
    await assert.rejects(promise, (err: unknown) => {
      assert.ok(err instanceof NvidiaSmiError, `expected NvidiaSmiError, got ${String(err)}`);
      assert.equal(err.code, code, err.message);
      if (message) assert.match(err.message, message);
      return true;
    });
  }

  async function failsAs(type: string, nonRetryable: boolean, code: NvidiaSmiErrorCode): Promise<void> {
    await assert.rejects(createMeasureVram({ nvidiaSmi: standIn, timeoutMs: 5000 })(), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure, `expected ApplicationFailure, got ${String(err)}`);
      assert.equal(err.type, type);
      assert.equal(err.nonRetryable, nonRetryable);
      assert.deepEqual(err.details?.[0], {
        code,
        exitCode: (err.details?.[0] as { exitCode: number }).exitCode,
      });
      return true;
    });
  }

  test('prints the GPU query in nvidia-smi’s exact format', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath });
    const { stdout } = await execa(standIn, GPU_QUERY_ARGS);
    assert.equal(
      stdout,
      `0, ${H100}, NVIDIA H100 80GB HBM3, 81559, 71234, 10325, 37\n` +
        '1, GPU-d8594bd4-0fc3-8595-e355-7c98138f3b95, NVIDIA A100-SXM4-80GB, MIG, 81920, 100, 81820, [N/A]',
    );
  });

  test('prints the process query in nvidia-smi’s exact format', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath });
    const { stdout } = await execa(standIn, APPS_QUERY_ARGS);
    assert.equal(
      stdout,
      `4242, VLLM::EngineCore, 70000, ${H100}\n4343, python3, [N/A], GPU-d8594bd4-0fc3-8595-e355-7c98138f3b95`,
    );
  });

  test('with a header and units when asked, like nvidia-smi', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath });
    const { stdout } = await execa(standIn, ['--query-gpu=memory.used,utilization.gpu', '--format=csv']);
    assert.equal(stdout, 'memory.used [MiB], utilization.gpu [%]\n71234 MiB, 37 %\n100 MiB, [N/A]');
    const apps = await execa(standIn, ['--query-compute-apps=pid,used_memory', '--format=csv']);
    assert.equal(apps.stdout, 'pid, used_gpu_memory [MiB]\n4242, 70000 MiB\n4343, [N/A]');
  });

  test('-L and the summary table', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath });
    const list = await execa(standIn, ['-L']);
    assert.equal(list.stdout.split('\n')[0], `GPU 0: NVIDIA H100 80GB HBM3 (UUID: ${H100})`);
    const table = (await execa(standIn, [])).stdout.split('\n');
    assert.match(table[2] ?? '', /^\| NVIDIA-SMI [\d.]+ +Driver Version: [\d.]+ +CUDA Version: [\d.]+ +\|$/);
    assert.ok(table.some((l) => /^\| +0 +NVIDIA H100 80GB HBM3 +On +\| 00000000:18:00\.0 Off \|/.test(l)));
    assert.ok(table.some((l) => l.includes('|  71234MiB / 81559MiB |     37%      Default |')));
    assert.ok(table.some((l) => /^\| +0 +N\/A +N\/A +4242 +C +VLLM::EngineCore +70000MiB \|$/.test(l)));
    for (const line of table.slice(1)) assert.equal(line.length, 89, JSON.stringify(line));
  });

  test('an unknown field or option is refused with exit 2, as nvidia-smi does', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath });
    const field = await execa(standIn, ['--query-gpu=index,fan.speedz', '--format=csv'], { reject: false });
    assert.equal(field.exitCode, 2);
    assert.equal(field.stdout.trim(), 'Field "fan.speedz" is not a valid field to query.');
    const option = await execa(standIn, ['--bogus'], { reject: false });
    assert.equal(option.exitCode, 2);
    assert.match(option.stdout, /^Invalid combination of input arguments/);
  });

  test('starts fast (< 300 ms)', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath });
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await execa(standIn, GPU_QUERY_ARGS);
      times.push(performance.now() - t0);
    }
    assert.ok(Math.min(...times) < 300, `fastest run took ${Math.min(...times).toFixed(0)} ms`);
  });

  test('measureVram: the simulated GPUs and processes, free = total − used', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath });
    const before = Date.now();
    const snap = await createMeasureVram({ nvidiaSmi: standIn })();
    assert.ok(Date.parse(snap.measuredAt) >= before - 1000 && Date.parse(snap.measuredAt) <= Date.now());
    assert.deepEqual(snap.gpus, [
      gpu({
        index: 0,
        uuid: H100,
        name: 'NVIDIA H100 80GB HBM3',
        totalMb: 81559,
        usedMb: 71234,
        freeMb: 10325,
        utilizationPct: 37,
      }),
      gpu({
        index: 1,
        uuid: 'GPU-d8594bd4-0fc3-8595-e355-7c98138f3b95',
        name: 'NVIDIA A100-SXM4-80GB, MIG',
        totalMb: 81920,
        usedMb: 100,
        freeMb: 81820,
      }),
    ]);
    assert.deepEqual(snap.processes, [
      { pid: 4242, processName: 'VLLM::EngineCore', usedMb: 70000, gpuUuid: H100 },
      {
        pid: 4343,
        processName: 'python3',
        usedMb: null,
        gpuUuid: 'GPU-d8594bd4-0fc3-8595-e355-7c98138f3b95',
      },
    ]);
  });

  test('reads the state on every run: a change shows in the next measurement', T, async () => {
    const path = join(dir, 'changing.json');
    env({ KLR_SIM_GPU_STATE: path });
    const measure = createMeasureVram({ nvidiaSmi: standIn });
    await writeFile(path, JSON.stringify({ ...state, processes: [] }));
    assert.deepEqual((await measure()).processes, []);
    await writeFile(path, JSON.stringify({ gpus: [{ ...state.gpus[0], usedMb: 80000 }], processes: [] }));
    const snap = await measure();
    assert.equal(snap.gpus.length, 1);
    assert.equal(snap.gpus[0]?.freeMb, 1559);
  });

  test('KLR_NVIDIA_SMI names the nvidia-smi to run', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath, KLR_NVIDIA_SMI: standIn });
    assert.equal((await measureVramOnce()).gpus.length, 2);
  });

  test('found on PATH by its name when sim/bin is put on PATH (tests only)', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath, PATH: `${join(root, 'sim/bin')}${delimiter}${saved.PATH ?? ''}` });
    assert.equal((await measureVramOnce()).processes.length, 2);
  });

  test('no state file: a machine without GPUs → no_devices, not retried', T, async () => {
    env({ KLR_SIM_GPU_STATE: join(dir, 'absent.json') });
    await rejectsWith(measureVramOnce({ nvidiaSmi: standIn }), 'no_devices', /No devices were found/);
    await failsAs(VRAM_UNAVAILABLE, true, 'no_devices');
  });

  test('state with no GPU → no_devices', T, async () => {
    const path = join(dir, 'none.json');
    await writeFile(path, JSON.stringify({ gpus: [], processes: [] }));
    env({ KLR_SIM_GPU_STATE: path });
    await rejectsWith(measureVramOnce({ nvidiaSmi: standIn }), 'no_devices');
  });

  test('fails like the real one: its texts on stdout, its exit codes', T, async () => {
    const cases: [Partial<Record<(typeof SIM_VARS)[number], string>>, number, RegExp][] = [
      [{ KLR_SIM_GPU_STATE: join(dir, 'absent.json') }, 6, /^No devices were found$/],
      [{}, 6, /^No devices were found$/],
      [{ KLR_SIM_GPU_STATE: statePath, KLR_SIM_NVIDIA_SMI_FAIL: 'no_devices' }, 6, /^No devices were found$/],
      [
        { KLR_SIM_GPU_STATE: statePath, KLR_SIM_NVIDIA_SMI_FAIL: 'driver_mismatch' },
        18,
        /^Failed to initialize NVML: Driver\/library version mismatch\nNVML library version: \d+\.\d+$/,
      ],
      [
        { KLR_SIM_GPU_STATE: statePath, KLR_SIM_NVIDIA_SMI_FAIL: 'driver_unreachable' },
        9,
        /^NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver\. Make sure that the latest NVIDIA driver is installed and running\.$/,
      ],
    ];
    for (const [vars, exitCode, stdout] of cases) {
      env({ KLR_SIM_GPU_STATE: undefined, ...vars });
      const r = await execa(standIn, GPU_QUERY_ARGS, { reject: false });
      assert.equal(r.exitCode, exitCode, JSON.stringify(vars));
      assert.match(r.stdout.trim(), stdout);
      assert.equal(r.stderr, '');
    }
    env({ KLR_SIM_GPU_STATE: statePath, KLR_SIM_NVIDIA_SMI_FAIL: 'melted' });
    const bad = await execa(standIn, GPU_QUERY_ARGS, { reject: false });
    assert.equal(bad.exitCode, 255);
    assert.match(bad.stderr, /unknown KLR_SIM_NVIDIA_SMI_FAIL="melted"/);
  });

  test('nvidia-smi that succeeds but lists no GPU → no_devices', T, async () => {
    env({});
    const empty = join(dir, 'empty-output');
    await writeFile(empty, '#!/bin/sh\nexit 0\n');
    await chmod(empty, 0o755);
    await rejectsWith(measureVramOnce({ nvidiaSmi: empty }), 'no_devices', /listed no GPU/);
  });

  test('driver/library mismatch → driver_mismatch, not retried', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath, KLR_SIM_NVIDIA_SMI_FAIL: 'driver_mismatch' });
    await rejectsWith(measureVramOnce({ nvidiaSmi: standIn }), 'driver_mismatch', /reboot/);
    await failsAs(VRAM_UNAVAILABLE, true, 'driver_mismatch');
  });

  test('driver unreachable → driver_unreachable, retried', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath, KLR_SIM_NVIDIA_SMI_FAIL: 'driver_unreachable' });
    await rejectsWith(measureVramOnce({ nvidiaSmi: standIn }), 'driver_unreachable');
    await failsAs(NVIDIA_SMI_FAILED, false, 'driver_unreachable');
  });

  test('a hung nvidia-smi is killed at the timeout → timeout, retried', T, async () => {
    env({ KLR_SIM_GPU_STATE: statePath, KLR_SIM_NVIDIA_SMI_FAIL: 'hang' });
    const t0 = Date.now();
    await rejectsWith(measureVramOnce({ nvidiaSmi: standIn, timeoutMs: 300 }), 'timeout', /within 0\.3 s/);
    const took = Date.now() - t0;
    assert.ok(took >= 250 && took < 2500, `took ${took} ms`);
    await assert.rejects(createMeasureVram({ nvidiaSmi: standIn, timeoutMs: 300 })(), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, NVIDIA_SMI_FAILED);
      assert.equal(err.nonRetryable, false);
      return true;
    });
  });

  test(
    'a wrapper whose child outlives the kill is abandoned soon after the timeout, and the process can exit',
    T,
    async () => {
      // sh dies by SIGKILL, but the sleep it started keeps the output pipe open for 120 s: like a process stuck
      // in the driver, it cannot be waited for. Run as the CLI would, in a process of its own, which must end
      // long before the pipe closes (the bound is far from both outcomes, so a loaded machine cannot flip it).
      const wrapper = join(dir, 'stuck-wrapper');
      const sleepPid = join(dir, 'stuck-sleep.pid');
      await writeFile(wrapper, `#!/bin/sh\nsleep 120 &\necho $! >> ${sleepPid}\nwait\n`);
      await chmod(wrapper, 0o755);
      const module = new URL('../../src/activities/measure-vram.ts', import.meta.url).href;
      const script = `import { measureVramOnce } from ${JSON.stringify(module)};
      try { await measureVramOnce({ nvidiaSmi: ${JSON.stringify(wrapper)}, timeoutMs: 200 }); }
      catch (e) { console.log(e.code); }`;
      const t0 = Date.now();
      const cli = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: root,
      });
      const took = Date.now() - t0;
      // Stop what the test started: each call's sleep outlived its shell on purpose.
      for (const pid of (await readFile(sleepPid, 'utf8').catch(() => '')).split('\n').map(Number)) {
        try {
          if (pid > 0) process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      assert.equal(cli.stdout, 'timeout');
      assert.ok(took < 60_000, `took ${took} ms: waited for the pipe instead of giving up`);
    },
  );

  test('exit 14 with an infoROM warning still yields the data; exit 14 without it does not', T, async () => {
    const script = (warning: string) =>
      '#!/bin/sh\ncase "$1" in\n  --query-gpu=*)\n' +
      `    echo "0, GPU-ab9c7e44-55d2-8e0d-1f6b-6c2d3e4f5a6b, Tesla T4, 15360, 0, 14930, 0"\n    ${warning}\n` +
      '    exit 14 ;;\nesac\n';
    const warned = join(dir, 'inforom');
    await writeFile(warned, script('echo "WARNING: infoROM is corrupted at gpu 0000:04:00.0"'));
    await chmod(warned, 0o755);
    const snap = await measureVramOnce({ nvidiaSmi: warned });
    assert.deepEqual(
      snap.gpus.map((g) => g.name),
      ['Tesla T4'],
    );
    assert.deepEqual(snap.processes, []);
    const silent = join(dir, 'exit14');
    await writeFile(silent, script('true'));
    await chmod(silent, 0o755);
    await rejectsWith(measureVramOnce({ nvidiaSmi: silent }), 'failed', /exited with code 14/);
  });

  test('not installed: a path that does not exist → not_installed, not retried', T, async () => {
    env({});
    const missing = join(dir, 'no-such-nvidia-smi');
    await rejectsWith(
      measureVramOnce({ nvidiaSmi: missing }),
      'not_installed',
      /not found at .*no-such-nvidia-smi/,
    );
    await assert.rejects(createMeasureVram({ nvidiaSmi: missing })(), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, VRAM_UNAVAILABLE);
      assert.equal(err.nonRetryable, true);
      return true;
    });
  });

  test('not installed: nothing called nvidia-smi on PATH', T, async () => {
    env({ PATH: dir, KLR_NVIDIA_SMI: undefined });
    await rejectsWith(
      measureVramOnce(),
      'not_installed',
      /^nvidia-smi not found on PATH: install the NVIDIA driver utilities, or set KLR_NVIDIA_SMI to its path$/,
    );
  });

  test('a file that is not executable → failed (EACCES), retried', T, async () => {
    env({});
    const plain = join(dir, 'not-executable');
    await writeFile(plain, 'not a program\n');
    await chmod(plain, 0o644);
    await rejectsWith(measureVramOnce({ nvidiaSmi: plain }), 'failed', /EACCES/);
  });

  test('garbage output → unparseable, quoting it', T, async () => {
    env({});
    const liar = join(dir, 'liar');
    await writeFile(liar, '#!/bin/sh\necho "hello from a wrapper"\n');
    await chmod(liar, 0o755);
    await rejectsWith(measureVramOnce({ nvidiaSmi: liar }), 'unparseable', /"hello from a wrapper"/);
  });

  test('a bad timeout is refused at once', T, () => {
    assert.throws(
      () => createMeasureVram({ nvidiaSmi: standIn, timeoutMs: 0 }),
      /timeoutMs must be a positive/,
    );
  });
});
