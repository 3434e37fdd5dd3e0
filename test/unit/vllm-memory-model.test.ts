// The memory model, checked against numbers worked out by hand (and, for the activation term, against what
// vLLM itself measured). Sizes are MiB unless said otherwise; 1 MiB = 1 048 576 bytes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { llama3_8b, serving8k } from '../support/model-profiles.js';
import {
  activationPeakMb,
  cudaGraphCaptureSizes,
  cudaGraphMb,
  kvBytesForModelLen,
  kvBytesPerToken,
  kvFitsMaxModelLen,
  nonTorchMb,
  planMemory,
} from '../../src/domain/vllm-memory-model.js';
import { parseVllmRelease } from '../../src/domain/vllm-release.js';

const llama = llama3_8b;

const base = serving8k;

/** An 80 GiB GPU. */
const GPU = 81920;

describe('KV bytes per token', () => {
  test('Llama-3-8B in bf16: 2 × 32 layers × 8 heads × 128 × 2 bytes = 131 072 bytes (128 KiB)', () => {
    assert.equal(kvBytesPerToken(llama, base), 131072);
  });

  test('fp8 KV cache: one byte per element, half of it', () => {
    for (const kvCacheDtype of ['fp8', 'fp8_e4m3', 'fp8_e5m2'] as const) {
      assert.equal(kvBytesPerToken(llama, { ...base, kvCacheDtype }), 65536);
    }
  });

  test('tensor parallel 2: each rank holds 4 of the 8 KV heads → 65 536 bytes', () => {
    assert.equal(kvBytesPerToken(llama, { ...base, tensorParallelSize: 2 }), 65536);
  });

  test('more ranks than KV heads: vLLM replicates, one head per rank → 2 × 32 × 1 × 128 × 2 = 16 384', () => {
    assert.equal(kvBytesPerToken(llama, { ...base, tensorParallelSize: 16 }), 16384);
  });

  test('MHA (kv heads = heads) in fp32: 2 × 32 × 32 × 128 × 4 = 1 048 576 bytes', () => {
    assert.equal(kvBytesPerToken({ ...llama, kvHeads: 32, dtypeBytes: 4 }, base), 1048576);
  });

  test('a request is charged whole blocks of 16 tokens: 8193 tokens → 513 blocks', () => {
    assert.equal(kvBytesForModelLen(llama, base, 8193), 513 * 16 * 131072);
    assert.equal(kvBytesForModelLen(llama, base, 8192), 512 * 16 * 131072);
  });
});

describe('activation peak of the profiling run', () => {
  test('8192 tokens, 256 sequences: the sampler dominates', () => {
    // forward per token = (4 × 4096 + max(3 × 14336, (2×32 + 2×8) × 128)) × 2 = (16384 + 43008) × 2 = 118 784 B
    // forward  = 8192 × 118 784 B = 928 MiB
    // sampler  = 256 × 128 256 × (2 + 9 × 4) B = 1 247 674 368 B = 1189.875 MiB
    //          + hidden states 8192 × 4096 × 2 B = 64 MiB                      → 1253.875 MiB
    assert.equal(activationPeakMb(llama, base), 1253.875);
  });

  test("vLLM's defaults on an H100 (8192 tokens, 1024 sequences) come within 2 % of its measured 4.76 GiB", () => {
    // sampler = 1024 × 128 256 × 38 B = 4759.5 MiB, + 64 MiB hidden states = 4823.5 MiB = 4.71 GiB
    const mb = activationPeakMb(llama, { ...base, maxNumSeqs: 1024 });
    assert.equal(mb, 4823.5);
    const measuredMb = 4.76 * 1024;
    assert.ok(Math.abs(mb - measuredMb) / measuredMb < 0.02, `${mb} vs ${measuredMb}`);
  });

  test('a large token budget with few sequences: the forward pass dominates', () => {
    // forward = 65 536 × 118 784 B = 7424 MiB; sampler = 16 × 128 256 × 38 B + 65 536 × 8192 B ≈ 74.4 + 512 MiB
    assert.equal(activationPeakMb(llama, { ...base, maxNumBatchedTokens: 65536, maxNumSeqs: 16 }), 7424);
  });

  test('the sampler never sees more requests than tokens', () => {
    const a = activationPeakMb(llama, { ...base, maxNumBatchedTokens: 128, maxNumSeqs: 256 });
    const b = activationPeakMb(llama, { ...base, maxNumBatchedTokens: 128, maxNumSeqs: 128 });
    assert.equal(a, b);
  });
});

describe('non-torch and CUDA-graph memory', () => {
  test('non-torch: 512 MiB on one GPU, 1024 MiB per rank with tensor parallelism', () => {
    assert.equal(nonTorchMb(base), 512);
    assert.equal(nonTorchMb({ ...base, tensorParallelSize: 2 }), 1024);
  });

  test('capture sizes follow vLLM: 1, 2, 4, every 8 below 256, every 16 up to min(2 × max-num-seqs, 512)', () => {
    const sizes = cudaGraphCaptureSizes(base); // max = min(512, 512, 8192) = 512
    assert.equal(sizes.length, 51); // 3 + 31 (8..248) + 17 (256..512)
    assert.deepEqual(sizes.slice(0, 6), [1, 2, 4, 8, 16, 24]);
    assert.deepEqual(sizes.slice(-3), [480, 496, 512]);
    assert.deepEqual(cudaGraphCaptureSizes({ ...base, maxNumSeqs: 4 }), [1, 2, 4, 8]);
    assert.deepEqual(cudaGraphCaptureSizes({ ...base, maxNumBatchedTokens: 4, maxNumSeqs: 4 }), [1, 2, 4]);
  });

  test('CUDA graphs: 51 sizes × 32 layers × 0.25 MiB + the 512-batch activations (58 MiB) = 466 MiB', () => {
    assert.equal(cudaGraphMb(llama, base), 466);
    // max-num-seqs 4: sizes 1, 2, 4, 8 → 4 × 32 × 0.25 = 32 MiB + 8 × 118 784 B = 0.90625 MiB
    assert.equal(cudaGraphMb(llama, { ...base, maxNumSeqs: 4 }), 32.90625);
  });

  test('enforce-eager: no CUDA graphs at all', () => {
    assert.deepEqual(cudaGraphCaptureSizes({ ...base, enforceEager: true }), []);
    assert.equal(cudaGraphMb(llama, { ...base, enforceEager: true }), 0);
  });

  test('CUDA-graph memory grows with max-num-seqs', () => {
    const small = cudaGraphMb(llama, { ...base, maxNumSeqs: 16 });
    const large = cudaGraphMb(llama, { ...base, maxNumSeqs: 128 });
    assert.ok(small < large, `${small} < ${large}`);
  });
});

describe('planMemory', () => {
  test('Llama-3-8B on an 80 GiB GPU at 0.9, release unknown: the conservative plan', () => {
    const plan = planMemory(llama, base, GPU);
    // requested = 81 920 × 0.9 = 73 728
    // kv        = 73 728 − 15 317 − 1253.875 − 512 − 466 = 56 179.125 MiB (54.9 GiB)
    // tokens    = floor(56 179.125 × 1 048 576 / 131 072) = floor(56 179.125 × 8) = 449 433
    assert.deepEqual(plan, {
      release: null,
      accounting: 'conservative',
      totalMb: 81920,
      requestedMb: 73728,
      weightsMb: 15317,
      activationPeakMb: 1253.875,
      nonTorchMb: 512,
      cudaGraphMb: 466,
      kvCacheMb: 56179.125,
      kvBytesPerToken: 131072,
      maxKvTokens: 449433,
      estimatedMaxModelLen: 8192,
      cudaGraphsInBudget: true,
      outsideBudgetMb: 0,
      unpredictable: null,
    });
    assert.ok(kvFitsMaxModelLen(plan, base));
  });

  test('the estimated max model length is what vLLM prints: whole blocks that fit, when max-model-len does not', () => {
    const cfg = { ...base, maxModelLen: 524288 };
    const plan = planMemory(llama, cfg, GPU);
    // 449 433 tokens → 28 089 whole blocks of 16 → 449 424
    assert.equal(plan.estimatedMaxModelLen, 449424);
    assert.equal(kvFitsMaxModelLen(plan, cfg), false);
    // 449 424 itself fits, one block more does not
    assert.ok(
      kvFitsMaxModelLen(planMemory(llama, { ...base, maxModelLen: 449424 }, GPU), {
        ...base,
        maxModelLen: 449424,
      }),
    );
    const over = { ...base, maxModelLen: 449425 };
    assert.equal(kvFitsMaxModelLen(planMemory(llama, over, GPU), over), false);
  });

  test('enforce-eager gives the CUDA-graph estimate to the KV cache', () => {
    const plan = planMemory(llama, { ...base, enforceEager: true }, GPU);
    assert.equal(plan.cudaGraphMb, 0);
    assert.equal(plan.kvCacheMb, 56179.125 + 466);
  });

  test('fp8 KV cache: the same memory holds twice the tokens', () => {
    const plan = planMemory(llama, { ...base, kvCacheDtype: 'fp8' }, GPU);
    assert.equal(plan.kvCacheMb, 56179.125);
    assert.equal(plan.maxKvTokens, 898866);
  });

  test('tensor parallel 2: half the weights per GPU, NCCL buffers, TP-sharded forward pass', () => {
    const plan = planMemory(llama, { ...base, tensorParallelSize: 2 }, GPU);
    // weights 15 317 / 2 = 7658.5; non-torch 1024;
    // forward per token = (16384 + max(3 × 14336 / 2, 80 × 128 / 2)) × 2 = (16384 + 21504) × 2 = 75 776 B
    // activation: sampler (full vocab on every rank) still 1253.875 > forward 8192 × 75 776 B = 592 MiB
    // graphs: 408 + 512 × 75 776 B (37 MiB) = 445 MiB
    assert.equal(plan.weightsMb, 7658.5);
    assert.equal(plan.nonTorchMb, 1024);
    assert.equal(plan.activationPeakMb, 1253.875);
    assert.equal(plan.cudaGraphMb, 445);
    assert.equal(plan.kvCacheMb, 73728 - 7658.5 - 1253.875 - 1024 - 445);
    assert.equal(plan.kvBytesPerToken, 65536);
  });

  test('too small a budget: KV cache ≤ 0, no tokens, nothing fits ("No available memory for the cache blocks")', () => {
    const cfg = { ...base, gpuMemoryUtilization: 0.2 };
    const plan = planMemory(llama, cfg, GPU);
    // 16 384 − 15 317 − 1253.875 − 512 − 466 = −1164.875
    assert.equal(plan.kvCacheMb, -1164.875);
    assert.equal(plan.maxKvTokens, 0);
    assert.equal(plan.estimatedMaxModelLen, 0);
    assert.equal(kvFitsMaxModelLen(plan, cfg), false);
  });

  test('lowering the utilization by 0.05 on 80 GiB takes exactly 4096 MiB off the KV cache', () => {
    const a = planMemory(llama, base, GPU);
    const b = planMemory(llama, { ...base, gpuMemoryUtilization: 0.85 }, GPU);
    assert.ok(Math.abs(a.kvCacheMb - b.kvCacheMb - 4096) < 1e-6);
    assert.ok(Math.abs(a.requestedMb - b.requestedMb - 4096) < 1e-6);
  });

  test('nonsense inputs are refused with the field named', () => {
    assert.throws(
      () => planMemory({ ...llama, layers: 0 }, base, GPU),
      /model\.layers must be a positive number/,
    );
    assert.throws(() => planMemory(llama, { ...base, tensorParallelSize: 0 }, GPU), /tensorParallelSize/);
    assert.throws(() => planMemory(llama, base, Number.NaN), /gpuTotalMb/);
  });
});

describe("a release's accounting (src/domain/vllm-release.ts)", () => {
  const r = (v: string) => {
    const x = parseVllmRelease(v);
    assert.ok(x);
    return x;
  };
  // An H100 80GB as torch sees it: 79.19 GiB; Llama-3.1-8B with 14.99 GiB of weights (as vLLM 0.19 printed).
  const H100 = 79.19 * 1024;
  const llama31 = { ...llama, weightsMb: 14.99 * 1024 };
  const served = { ...base, gpuMemoryUtilization: 0.95, maxNumSeqs: 1024 };

  test('0.19 on an H100: the light sampler, 256 MiB of non-torch, graphs beside the budget (vLLM printed 58.11 GiB)', () => {
    const plan = planMemory(llama31, served, H100, { release: r('0.19.0') });
    // sampler = 1024 × 128 256 × (2 + 13) B + 8192 × 4096 × 2 B = 1878.75 + 64 = 1942.75 MiB (vLLM: 1.89 GiB)
    assert.equal(plan.activationPeakMb, 1942.75);
    assert.equal(plan.nonTorchMb, 256);
    // kv = 0.95 × 81 090.56 − 15 349.76 − 1942.75 − 256 = 59 487.52 MiB = 58.09 GiB
    assert.ok(Math.abs(plan.kvCacheMb / 1024 - 58.09) < 0.01, `${plan.kvCacheMb / 1024} GiB`);
    assert.equal(plan.accounting, 'three_terms');
    assert.equal(plan.cudaGraphsInBudget, false);
    // beside the budget: the CUDA context and the graphs (2 per size from 0.11)
    assert.equal(plan.outsideBudgetMb, 512 + plan.cudaGraphMb);
    assert.equal(plan.cudaGraphMb, 2 * 51 * 32 * 0.25 + (512 * 118784) / 1048576);
  });

  test('0.20 takes the graph estimate off the KV cache instead', () => {
    const p19 = planMemory(llama31, served, H100, { release: r('0.19.0') });
    const p20 = planMemory(llama31, served, H100, { release: r('0.20.0') });
    assert.equal(p20.kvCacheMb, p19.kvCacheMb - p19.cudaGraphMb);
    assert.equal(p20.outsideBudgetMb, 512);
  });

  test('0.15 sorted the whole vocabulary in its dummy sampler: 2 + 36 bytes per entry', () => {
    const plan = planMemory(llama31, served, H100, { release: r('0.15.0') });
    assert.equal(plan.activationPeakMb, (1024 * 128256 * 38) / 1048576 + 64);
  });

  test('V0 0.6.4 on a 3090 at 20 000 tokens: one batch of the whole context; the context and others charged (vLLM printed 3.81 GiB)', () => {
    const plan = planMemory(
      llama31,
      { ...base, maxModelLen: 20000, maxNumBatchedTokens: 20000, maxNumSeqs: 256 },
      23.58 * 1024,
      { release: r('0.6.4'), othersMb: 0 },
    );
    // forward = 20 000 × (3 × 4096 + 3 × 14 336) × 2 B = 2109.4 MiB (vLLM: 17.06 − 14.99 = 2.07 GiB)
    assert.equal(plan.activationPeakMb, (20000 * 110592) / 1048576);
    assert.equal(plan.nonTorchMb, 64 + 300, 'growth + the CUDA context (vLLM: 0.35 GiB)');
    assert.ok(Math.abs(plan.kvCacheMb / 1024 - 3.81) < 0.02, `${plan.kvCacheMb / 1024} GiB`);
    const shared = planMemory(
      llama31,
      { ...base, maxModelLen: 20000, maxNumBatchedTokens: 20000, maxNumSeqs: 256 },
      23.58 * 1024,
      { release: r('0.6.4'), othersMb: 4096 },
    );
    assert.equal(shared.kvCacheMb, plan.kvCacheMb - 4096, 'other processes come off the KV cache in 0.6.4');
  });

  test('pooling models never sample; multimodal ones must be measured', () => {
    const pooled = planMemory({ ...llama31, kind: 'pooling' }, served, H100, { release: r('0.19.0') });
    assert.equal(pooled.activationPeakMb, (8192 * 118784) / 1048576); // the forward term alone
    const vlm = planMemory({ ...llama31, kind: 'multimodal' }, served, H100, { release: r('0.19.0') });
    assert.match(vlm.unpredictable ?? '', /must measure it/);
  });
});
