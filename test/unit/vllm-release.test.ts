// vLLM releases: versions as services print them, each release's accounting rules, and its scheduler defaults.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { atLeast, batchDefaultsFor, parseVllmRelease, releaseRules } from '../../src/domain/vllm-release.js';

const rel = (v: string, engine?: 'v0' | 'v1') => {
  const r = parseVllmRelease(v, engine);
  assert.ok(r, v);
  return r;
};

describe('versions', () => {
  test('released, post, rc, dev and local versions; V1 from 0.8.0 unless the log says otherwise', () => {
    assert.deepEqual(parseVllmRelease('0.6.3.post1'), {
      version: '0.6.3.post1',
      major: 0,
      minor: 6,
      patch: 3,
      engine: 'v0',
    });
    assert.equal(rel('v0.10.1.1').version, '0.10.1.1');
    assert.equal(rel('0.11.1rc6.dev35+g29de3cdee').minor, 11);
    assert.equal(rel('0.10.1.dev101+gbda9d0535').patch, 1);
    assert.equal(rel('0.8.0').engine, 'v1');
    assert.equal(rel('0.7.3').engine, 'v0');
    assert.equal(rel('0.8.5', 'v0').engine, 'v0', 'VLLM_USE_V1=0');
    assert.equal(rel('0.19').patch, 0);
  });

  test('anything else is not a version', () => {
    for (const bad of ['', 'latest', '1', 'x0.6.3', '0.6.3 ; rm -rf /', `0.${'9'.repeat(200)}`, '0..1'])
      assert.equal(parseVllmRelease(bad), null, bad);
  });

  test('ordering', () => {
    assert.ok(atLeast(rel('0.9.1'), 0, 9, 1));
    assert.ok(!atLeast(rel('0.9.0'), 0, 9, 1));
    assert.ok(atLeast(rel('0.10.0'), 0, 9, 1));
    assert.ok(atLeast(rel('1.0.0'), 0, 27));
  });
});

describe('accounting by release (test/fixtures/vllm-startup-reports/README.md)', () => {
  const acc = (v: string, engine?: 'v0' | 'v1') => releaseRules(rel(v, engine)).accounting;
  test('V0: baseline since init ≤ 0.6.3, everything non-torch in 0.6.4, three terms from 0.6.5', () => {
    assert.equal(acc('0.5.4'), 'init_baseline');
    assert.equal(acc('0.6.3.post1'), 'init_baseline');
    assert.equal(acc('0.6.4'), 'all_non_torch');
    assert.equal(acc('0.6.4.post1'), 'all_non_torch');
    assert.equal(acc('0.6.5'), 'three_terms');
    assert.equal(acc('0.8.5', 'v0'), 'three_terms');
  });
  test('V1: everything non-torch ≤ 0.9.0, three terms 0.9.1 – 0.26, consumed from 0.27', () => {
    assert.equal(acc('0.8.2'), 'all_non_torch');
    assert.equal(acc('0.9.0'), 'all_non_torch');
    assert.equal(acc('0.9.1'), 'three_terms');
    assert.equal(acc('0.26.0'), 'three_terms');
    assert.equal(acc('0.27.1'), 'consumed');
  });
  test('the sampler got lighter in 0.17; graphs enter the budget and the default utilization rises in 0.20', () => {
    assert.equal(releaseRules(rel('0.16.0')).samplerExtraBytes, 36);
    assert.equal(releaseRules(rel('0.17.0')).samplerExtraBytes, 13);
    assert.equal(releaseRules(rel('0.19.0')).cudaGraphsInBudget, false);
    assert.equal(releaseRules(rel('0.20.0')).cudaGraphsInBudget, true);
    assert.equal(releaseRules(rel('0.19.1')).defaultUtilization, 0.9);
    assert.equal(releaseRules(rel('0.20.0')).defaultUtilization, 0.92);
    assert.equal(releaseRules(rel('0.9.0')).startupFreeMemoryCheck, false);
    assert.equal(releaseRules(rel('0.9.1')).startupFreeMemoryCheck, true);
    assert.equal(releaseRules(rel('0.7.3')).forwardHiddenBuffers, 3);
    assert.equal(releaseRules(rel('0.7.3')).samplerWithChunkedPrefill, false);
  });
});

describe('scheduler defaults by release and GPU', () => {
  const H100 = { gpuTotalMb: 81559, gpuName: 'NVIDIA H100 80GB HBM3' };
  const A100 = { gpuTotalMb: 81920, gpuName: 'NVIDIA A100-SXM4-80GB' };
  const RTX3090 = { gpuTotalMb: 24576, gpuName: 'NVIDIA GeForce RTX 3090' };
  const d = (v: string | null, gpu: typeof H100, len = 8192, chunked?: boolean) =>
    batchDefaultsFor(v === null ? null : rel(v), gpu, len, chunked);

  test('V0: no chunked prefill up to 32k (the batch holds a whole request), 512 or 2048 tokens above', () => {
    assert.deepEqual(d('0.6.4', RTX3090, 20000), {
      maxNumBatchedTokens: 20000,
      maxNumSeqs: 256,
      chunkedPrefill: false,
    });
    assert.deepEqual(d('0.6.4', RTX3090, 35000), {
      maxNumBatchedTokens: 512,
      maxNumSeqs: 256,
      chunkedPrefill: true,
    });
    assert.deepEqual(d('0.7.1', RTX3090, 131072), {
      maxNumBatchedTokens: 2048,
      maxNumSeqs: 256,
      chunkedPrefill: true,
    });
    assert.deepEqual(d('0.7.1', RTX3090, 1024), {
      maxNumBatchedTokens: 2048,
      maxNumSeqs: 256,
      chunkedPrefill: false,
    });
  });
  test('V1 0.8.0 – 0.8.3: by the device name, 1024 sequences everywhere', () => {
    assert.deepEqual(d('0.8.2', RTX3090), {
      maxNumBatchedTokens: 2048,
      maxNumSeqs: 1024,
      chunkedPrefill: true,
    });
    assert.deepEqual(d('0.8.2', H100), { maxNumBatchedTokens: 8192, maxNumSeqs: 1024, chunkedPrefill: true });
    assert.equal(d('0.8.2', A100).maxNumBatchedTokens, 2048);
  });
  test('V1 0.8.4 – 0.8.5: by size, A100s included; 0.9 on: A100s excluded', () => {
    assert.equal(d('0.8.5', A100).maxNumBatchedTokens, 8192);
    assert.equal(d('0.9.2', A100).maxNumBatchedTokens, 2048);
    assert.deepEqual(d('0.19.0', H100), {
      maxNumBatchedTokens: 8192,
      maxNumSeqs: 1024,
      chunkedPrefill: true,
    });
    assert.deepEqual(d('0.19.0', RTX3090), {
      maxNumBatchedTokens: 2048,
      maxNumSeqs: 256,
      chunkedPrefill: true,
    });
  });
  test('0.33: a B200-class GPU gets 16384 tokens; a GB10 is not a large GPU', () => {
    const B200 = { gpuTotalMb: 183_000, gpuName: 'NVIDIA B200' };
    assert.equal(d('0.33.0', B200).maxNumBatchedTokens, 16384);
    assert.equal(d('0.19.0', B200).maxNumBatchedTokens, 8192);
    assert.equal(d('0.33.0', { gpuTotalMb: 124_000, gpuName: 'NVIDIA GB10' }).maxNumBatchedTokens, 2048);
  });
  test('unknown release: the V1 rule of today; chunked prefill off keeps a whole request in the batch', () => {
    assert.deepEqual(d(null, H100), { maxNumBatchedTokens: 8192, maxNumSeqs: 1024, chunkedPrefill: true });
    assert.equal(d(null, A100).maxNumBatchedTokens, 2048);
    assert.equal(d('0.19.0', H100, 65536, false).maxNumBatchedTokens, 65536);
  });
});
