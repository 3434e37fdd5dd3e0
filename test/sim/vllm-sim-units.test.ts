// The simulator's pure parts: vLLM's and PyTorch's message texts and number formats, the engine's
// start-up and run-time decisions, the config parser, the metrics text and the GPU state file.
// (No planMemory here: the plans are written out by hand.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { MemoryPlan, ServingConfig } from '../../src/domain/vllm-memory-model.js';
import { checkFreeMemory, checkKvCache, kvCacheTokens, runtimeOom } from '../../sim/lib/engine.js';
import { GiB, MiB, parseDurationMs, pyFloat, pyRound2, thousands, torchSize } from '../../sim/lib/format.js';
import { goFloat, renderMetrics } from '../../sim/lib/metrics.js';
import { ArgError, loadModelProfile, parseServeArgs } from '../../sim/lib/serve-config.js';
import { publishGpuState, pruneDeadProcesses, readGpuState, simGpuUuid } from '../../sim/lib/gpu-state.js';
import { DEFAULT_MODEL_PROFILE, readSimSettings, SettingsError } from '../../sim/lib/settings.js';
import { maxSeqLenTooLarge, noCacheBlocks, torchOutOfMemory } from '../../sim/lib/vllm-messages.js';

const serving = (over: Partial<ServingConfig> = {}): ServingConfig => ({
  gpuMemoryUtilization: 0.9,
  maxModelLen: 8192,
  maxNumBatchedTokens: 8192,
  maxNumSeqs: 256,
  kvCacheDtype: 'auto',
  enforceEager: false,
  tensorParallelSize: 1,
  ...over,
});

const plan = (over: Partial<MemoryPlan> = {}): MemoryPlan => ({
  release: null,
  accounting: 'conservative',
  totalMb: 81559,
  requestedMb: 73403.1,
  weightsMb: 15317,
  activationPeakMb: 1200,
  nonTorchMb: 300,
  cudaGraphMb: 500,
  kvCacheMb: 56086.1,
  kvBytesPerToken: 131072,
  maxKvTokens: 448688,
  estimatedMaxModelLen: 8192,
  cudaGraphsInBudget: true,
  outsideBudgetMb: 0,
  unpredictable: null,
  ...over,
});

test('numbers print as Python and PyTorch print them', () => {
  assert.equal(pyFloat(0.9), '0.9');
  assert.equal(pyFloat(1), '1.0');
  assert.equal(pyRound2(71559 / 1024), '69.88');
  assert.equal(pyRound2(70), '70.0');
  assert.equal(thousands(101104), '101,104');
  assert.equal(thousands(8192), '8,192');
  assert.equal(torchSize(2 * GiB), '2.00 GiB');
  assert.equal(torchSize(512 * MiB), '512.00 MiB');
  assert.equal(torchSize(3 * 1024), '3.00 KiB');
  assert.equal(torchSize(1000), '1000 bytes');
  assert.equal(goFloat(1795867553.997), '1.795867553997e+09');
  assert.equal(goFloat(3), '3.0');
  assert.equal(parseDurationMs('30s'), 30_000);
  assert.equal(parseDurationMs('500ms'), 500);
  assert.equal(parseDurationMs('2m'), 120_000);
  assert.equal(parseDurationMs('12'), 12_000);
  assert.equal(parseDurationMs('soon'), null);
});

test("vLLM's start-up texts, exactly", () => {
  assert.equal(
    checkFreeMemory(plan(), 81559 - 10000, 0.9),
    'Free memory on device (69.88/79.65 GiB) on startup is less than desired GPU memory utilization (0.9, 71.68 GiB). ' +
      'Decrease GPU memory utilization or reduce GPU memory used by other processes.',
  );
  assert.equal(checkFreeMemory(plan(), 81559, 0.9), null);
  assert.equal(
    noCacheBlocks(),
    'No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.',
  );
  assert.equal(
    maxSeqLenTooLarge(32768, 4 * GiB, 2.5 * GiB, 20480),
    "To serve at least one request with the models's max seq len (32768), (4.00 GiB KV cache is needed, which is larger " +
      'than the available KV cache memory (2.50 GiB). Based on the available memory, the estimated maximum model length ' +
      'is 20480. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.',
  );
  // Without an estimate vLLM leaves two spaces where the sentence would be.
  assert.match(maxSeqLenTooLarge(32768, 4 * GiB, 1 * MiB, 0), /\(0\.00 GiB\)\. {2}Try increasing/);
});

test("PyTorch's CUDA OOM text, exactly", () => {
  const gib = (x: number) => x * GiB;
  assert.equal(
    torchOutOfMemory({
      gpuIndex: 0,
      triedBytes: gib(2),
      totalBytes: gib(79.65),
      freeBytes: gib(1.23),
      otherProcesses: [],
      processInUseBytes: gib(78.4),
      allocatedBytes: gib(75.1),
      privatePoolBytes: 0,
      reservedUnallocatedBytes: gib(1.2),
    }),
    'CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.65 GiB of which 1.23 GiB is free. ' +
      'Including non-PyTorch memory, this process has 78.40 GiB memory in use. Of the allocated memory 75.10 GiB is ' +
      'allocated by PyTorch, and 1.20 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is ' +
      'large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for ' +
      'Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)',
  );
});

test('the KV cache check: no room, too short for max_model_len, or fits', () => {
  assert.equal(checkKvCache(plan({ kvCacheMb: -120 }), serving()), noCacheBlocks());
  assert.equal(checkKvCache(plan({ kvCacheMb: 0 }), serving()), noCacheBlocks());
  // 32768 tokens × 128 KiB = 4 GiB needed, 2.5 GiB there.
  assert.equal(
    checkKvCache(plan({ kvCacheMb: 2560, estimatedMaxModelLen: 20480 }), serving({ maxModelLen: 32768 })),
    maxSeqLenTooLarge(32768, 4 * GiB, 2.5 * GiB, 20480),
  );
  assert.equal(checkKvCache(plan({ kvCacheMb: 4096 }), serving({ maxModelLen: 32768 })), null);
  assert.equal(kvCacheTokens(plan({ maxKvTokens: 101_111 })), 101_104); // whole blocks of 16
});

test('a burst OOMs exactly when the headroom is below the spike', () => {
  const input = (requestedMb: number, othersMb = 0) => ({
    plan: plan({ requestedMb }),
    serving: serving(),
    gpuIndex: 0,
    othersMb,
    otherProcesses: [],
    spikeMb: 2048,
  });
  assert.equal(runtimeOom(input(81559 - 2048)), null); // exactly the spike left: fits
  const oom = runtimeOom(input(81559 - 2047));
  assert.ok(oom);
  assert.equal(oom.triedBytes, 2048 * MiB);
  assert.equal(oom.freeBytes, 2047 * MiB);
  assert.equal(oom.processInUseBytes, (81559 - 2047) * MiB);
  assert.equal(oom.privatePoolBytes, 500 * MiB);
  assert.ok(runtimeOom(input(70000, 10000)), 'memory of other processes counts');
  assert.equal(
    runtimeOom({ ...input(81559 - 2047), serving: serving({ enforceEager: true }) })?.privatePoolBytes,
    0,
  );
});

test('serve config: YAML with either key style, flags win, vLLM defaults', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sim-cfg-'));
  try {
    const profile = loadModelProfile(DEFAULT_MODEL_PROFILE);
    const file = join(dir, 'c.yaml');
    writeFileSync(
      file,
      'model: meta-llama/Llama-3.1-8B-Instruct\nserved_model_name: [a, b]\nport: 9001\ngpu_memory_utilization: 0.85\n' +
        'max-model-len: 16384\nenforce-eager: true\nkv_cache_dtype: fp8\nswap-space: 4\n',
    );
    const c = parseServeArgs(['--config', file, '--max-model-len', '4096'], profile, 81559);
    assert.deepEqual(c.servedModelNames, ['a', 'b']);
    assert.equal(c.port, 9001);
    assert.equal(c.host, null);
    assert.deepEqual(c.serving, {
      gpuMemoryUtilization: 0.85,
      maxModelLen: 4096,
      maxNumBatchedTokens: 8192,
      maxNumSeqs: 256,
      kvCacheDtype: 'fp8',
      enforceEager: true,
      tensorParallelSize: 1,
    });
    const d = parseServeArgs([], profile, 24 * 1024);
    assert.equal(d.serving.maxModelLen, 131072, 'max-model-len defaults to the model limit');
    assert.equal(d.serving.maxNumBatchedTokens, 2048, 'small GPUs batch 2048 tokens by default');
    assert.equal(d.servedModelNames[0], profile.name);
    assert.throws(() => parseServeArgs(['--port', 'abc'], profile, 81559), ArgError);
    assert.throws(
      () => parseServeArgs(['--kv-cache-dtype', 'int4'], profile, 81559),
      /invalid choice: 'int4'/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('settings: a bad value names the variable, the value and what is expected', () => {
  assert.equal(readSimSettings({}).gpuTotalMb, 81559);
  assert.equal(readSimSettings({}).startupMs, 8000);
  assert.throws(
    () => readSimSettings({ SIM_LOAD: 'lots' }),
    (e: unknown) => {
      assert.ok(e instanceof SettingsError);
      assert.equal(e.message, 'SIM_LOAD="lots" is not valid: expected a number between 0 and 1000');
      return true;
    },
  );
  assert.throws(() => readSimSettings({ SIM_GPU_TOTAL_MB: '0' }), /SIM_GPU_TOTAL_MB="0"/);
});

test('metrics use vLLM names with model_name labels', () => {
  const text = renderMetrics(
    'm',
    {
      running: 2,
      waiting: 0,
      kvCacheUsage: 0.25,
      promptTokens: 10,
      generationTokens: 32,
      successByReason: { stop: 0, length: 3, abort: 0 },
      preemptions: 0,
      createdAt: 1_700_000_000.5,
    },
    null,
  );
  assert.match(text, /^vllm:num_requests_running\{engine="0",model_name="m"\} 2\.0$/m);
  assert.match(text, /^vllm:num_requests_waiting\{engine="0",model_name="m"\} 0\.0$/m);
  assert.match(text, /^vllm:gpu_cache_usage_perc\{engine="0",model_name="m"\} 0\.25$/m);
  assert.match(text, /^vllm:kv_cache_usage_perc\{engine="0",model_name="m"\} 0\.25$/m);
  assert.match(text, /^# TYPE vllm:prompt_tokens_total counter$/m);
  assert.match(text, /^vllm:prompt_tokens_total\{engine="0",model_name="m"\} 10\.0$/m);
  assert.match(text, /^vllm:generation_tokens_total\{engine="0",model_name="m"\} 32\.0$/m);
  assert.match(
    text,
    /^vllm:request_success_total\{engine="0",model_name="m",finished_reason="length"\} 3\.0$/m,
  );
});

test('the GPU state file keeps live processes of others and drops dead ones', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sim-gpu-'));
  try {
    const path = join(dir, 'state', 'gpu.json');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid ?? 999_999; // exited: its pid is free
    const layout = { count: 1, totalMb: 81559, name: 'NVIDIA H100 80GB HBM3', otherUsedMb: 1000 };
    const uuid = simGpuUuid(0);
    assert.match(uuid, /^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(
      path,
      JSON.stringify({ gpus: [], processes: [{ pid: dead, name: 'python3', usedMb: 5000, gpuUuid: uuid }] }),
    );
    // Another live simulator (this test process stands in for it) holds 3000 MiB.
    publishGpuState(
      path,
      layout,
      process.pid,
      [{ pid: process.pid, name: 'python3', usedMb: 3000, gpuUuid: uuid }],
      0,
    );
    const state = publishGpuState(
      path,
      layout,
      4_000_000,
      [{ pid: 4_000_000, name: 'python3', usedMb: 7000, gpuUuid: uuid }],
      50,
    );
    assert.deepEqual(
      state.processes.map((p) => p.pid),
      [process.pid, 4_000_000],
      'the dead pid is gone, the live one kept',
    );
    assert.equal(state.gpus[0]?.usedMb, 1000 + 3000 + 7000);
    assert.equal(state.gpus[0]?.utilizationPct, 50);
    assert.deepEqual(readGpuState(path), state);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), state);
    pruneDeadProcesses(path); // 4_000_000 does not exist
    const pruned = readGpuState(path);
    assert.deepEqual(
      pruned?.processes.map((p) => p.pid),
      [process.pid],
    );
    assert.equal(pruned?.gpus[0]?.usedMb, 1000 + 3000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('requests: tokens counted like a BPE tokenizer; max_tokens, min_tokens and ignore_eos as vLLM honours them', async () => {
  const { completionLength, estimateTokens, parseGenerationRequest, promptTokensOfText } =
    await import('../../sim/lib/openai.js');
  assert.equal(estimateTokens('the of and to in'), 5, 'a common word with its space is one token');
  assert.equal(estimateTokens('Say something deterministic.'), 5); // Say, something, determinis|tic, .
  assert.equal(estimateTokens('12345678'), 3, 'digits in groups of three');
  assert.equal(promptTokensOfText('ping'), 2, 'plus BOS');
  const parse = (body: Record<string, unknown>, maxModelLen = 8192, eosAfter = 32) =>
    parseGenerationRequest(JSON.stringify({ model: 'm', ...body }), false, ['m'], maxModelLen, eosAfter);
  const ok = (body: Record<string, unknown>, eosAfter = 32) => {
    const r = parse(body, 8192, eosAfter);
    assert.ok(r.ok, JSON.stringify(r));
    return r.request;
  };
  // The model stops by itself after 32 tokens (SIM_EOS_AFTER_TOKENS), unless told otherwise.
  assert.deepEqual(
    [
      ok({ prompt: 'x', max_tokens: 100 }).completionTokens,
      ok({ prompt: 'x', max_tokens: 100 }).finishReason,
    ],
    [32, 'stop'],
  );
  assert.equal(ok({ prompt: 'x', max_tokens: 100, min_tokens: 80 }).completionTokens, 80);
  const forced = ok({ prompt: 'x', max_tokens: 100, ignore_eos: true });
  assert.deepEqual([forced.completionTokens, forced.finishReason], [100, 'length']);
  assert.equal(ok({ prompt: 'x', max_tokens: 8 }).completionTokens, 8);
  assert.equal(
    ok({ prompt: 'x', max_tokens: 100 }, 0).completionTokens,
    100,
    'SIM_EOS_AFTER_TOKENS=0: never',
  );
  assert.equal(completionLength(10, 0, false, 4), 4);

  const refused = (body: Record<string, unknown>, maxModelLen: number, re: RegExp) => {
    const r = parse(body, maxModelLen);
    assert.ok(!r.ok);
    assert.equal(r.status, 400);
    assert.match((JSON.parse(r.body) as { message: string }).message, re);
  };
  refused(
    { prompt: 'x', max_tokens: 4, min_tokens: 5 },
    8192,
    /^min_tokens must be less than or equal to max_tokens=4, got 5\.$/,
  );
  refused({ prompt: 'x', max_tokens: 4, ignore_eos: 'yes' }, 8192, /ignore_eos/);
  // vLLM's context check: prompt + max_tokens above max-model-len
  refused(
    { prompt: 'the of and to in is that for it as was with be on not', max_tokens: 8 },
    16,
    /^This model's maximum context length is 16 tokens\. However, you requested 24 tokens \(16 in the messages, 8 in the completion\)\./,
  );
});

test('the request-size histograms: vLLM buckets 1-2-5 up to max-model-len', async () => {
  const { build125Buckets, observe, tokenHistogram } = await import('../../sim/lib/metrics.js');
  assert.deepEqual(build125Buckets(100), [1, 2, 5, 10, 20, 50, 100]); // vLLM's own doctest
  assert.deepEqual(build125Buckets(8192).slice(-3), [1000, 2000, 5000]);
  const h = tokenHistogram(100);
  for (const v of [1, 3, 100, 101]) observe(h, v);
  assert.deepEqual(h.counts, [1, 0, 1, 0, 0, 0, 1, 1]); // ≤1, ≤2, ≤5, …, ≤100, +Inf
  assert.equal(h.sum, 205);
});
