// Candidate configs per failure family, with the numbers worked by hand, and the predictCandidates activity
// end to end (config file + model profile + VRAM measurement → ranked recommendation).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import {
  type CandidateInput,
  FLOOR_KNOBS,
  candidateFloors,
  compareCandidates,
  diagnose,
  generateCandidates,
  planCandidates,
  safetyMarginMb,
  tidyLength,
} from '../../src/domain/candidates.js';
import { PREDICTION_IMPOSSIBLE, createPredictCandidates } from '../../src/activities/predict-candidates.js';
import type { CandidateConfig, VramSnapshot } from '../../src/activities/types.js';
import { llama3_8b, serving8k } from '../support/model-profiles.js';
import { prng } from '../support/prng.js';
import { FAMILIES } from '../../src/domain/candidates.js';
import { SERVING_KEYS, type ServingConfig, planMemory } from '../../src/domain/vllm-memory-model.js';
import { parseVllmRelease } from '../../src/domain/vllm-release.js';
import { family, stopFamilies } from '../support/process-family.js';

after(stopFamilies);

const MODELS = fileURLToPath(new URL('../fixtures/models/', import.meta.url));

const llama = llama3_8b;

const current = serving8k;

const GPU = 81920;
const RESTART_MS = 41_000;

function input(over: Partial<CandidateInput>): CandidateInput {
  return {
    model: llama,
    current,
    gpu: { totalMb: GPU, freeMb: null, usedByOthersMb: 0 },
    symptom: null,
    restartEstimateMs: RESTART_MS,
    ...over,
  };
}

const ids = (cs: CandidateConfig[]) => cs.map((c) => c.id);
const byId = (cs: CandidateConfig[], id: string): CandidateConfig => {
  const c = cs.find((x) => x.id === id);
  assert.ok(c, `no candidate ${id} among ${ids(cs).join(' | ')}`);
  return c;
};

/** Properties every recommendation keeps. */
function assertWellFormed(cs: CandidateConfig[]): void {
  assert.ok(cs.length > 0);
  const firstMiss = cs.findIndex((c) => !c.fits);
  if (firstMiss >= 0)
    assert.ok(
      cs.slice(firstMiss).every((c) => !c.fits),
      'every fitting candidate comes first',
    );
  assert.equal(new Set(ids(cs)).size, cs.length, 'ids are unique');
  for (const c of cs) {
    assert.equal(c.predictedDowntimeMs, RESTART_MS);
    assert.ok(Object.keys(c.changes).length > 0);
    assert.equal(
      c.id,
      Object.entries(c.changes)
        .map(
          ([k, v]) =>
            `${k}=${typeof v === 'number' && k === 'gpu-memory-utilization' ? v.toFixed(2) : String(v)}`,
        )
        .join(','),
    );
    assert.ok(c.why.endsWith('.') && c.why.length > 20);
    assert.ok(c.givesUp.length > 0);
  }
}

describe('safety margin and tidy lengths', () => {
  test('margin: 1 % of the GPU, at least 512 MiB', () => {
    assert.equal(safetyMarginMb(81920), 820); // ceil(819.2)
    assert.equal(safetyMarginMb(24576), 512);
  });
  test('lengths round down to 1024, else 256, else a block', () => {
    assert.equal(tidyLength(98000), 97280);
    assert.equal(tidyLength(1000), 768);
    assert.equal(tidyLength(200), 192);
    assert.equal(tidyLength(10), 0);
  });
});

describe('torch_oom: a run-time CUDA OOM', () => {
  // Others hold 6000 MiB. The OOM: "Tried to allocate 2.00 GiB" with 500 MiB free of 81 920.
  // Used at the time: 81 920 − 500 = 81 420; others 6000 + budget 73 728 = 79 728 → 1692 MiB the model does not
  // explain, carried by every candidate. A candidate fits when 81 920 − 6000 − (0.u × 81 920 + 1692) ≥ 2048 + 820.
  //   0.88: 72 089.6 + 1692 = 73 781.6 → headroom 2138.4 < 2868  ✗
  //   0.87: 71 270.4 + 1692 = 72 962.4 → headroom 2957.6 ≥ 2868  ✓  (the largest that fits: floor2(71 360 / 81 920))
  const cs = generateCandidates(
    input({
      gpu: { totalMb: GPU, freeMb: 500, usedByOthersMb: 6000 },
      symptom: { family: 'torch_oom', allocMb: 2048, freeMb: 500, totalMb: GPU, gpu: 0 },
    }),
  );

  test('the smallest step that absorbs the spike ranks first', () => {
    assertWellFormed(cs);
    const best = cs[0];
    assert.ok(best);
    assert.equal(best.id, 'gpu-memory-utilization=0.87');
    assert.deepEqual(best.changes, { 'gpu-memory-utilization': 0.87 });
    assert.equal(best.fits, true);
    assert.equal(best.predictedVramMb, 72962);
    assert.equal(best.headroomMb, 2958);
    // KV: 56 179.125 → 56 179.125 − 0.03 × 81 920 = 53 721.525 MiB: 54.9 → 52.5 GiB, −4 %
    assert.equal(best.givesUp, 'KV cache 54.9 → 52.5 GiB (−4 %), fewer concurrent sequences');
    assert.match(
      best.why,
      /^CUDA ran out of memory at run time \(a 2\.0 GiB allocation failed with 500 MiB free\); gpu-memory-utilization 0\.90 → 0\.87 leaves 2\.9 GiB free/,
    );
  });

  test('smaller steps are shown, and do not fit', () => {
    const step = byId(cs, 'gpu-memory-utilization=0.88');
    assert.equal(step.fits, false);
    assert.equal(step.headroomMb, 2138);
    assert.match(
      step.why,
      /is not enough: only 2\.1 GiB would stay free, 2\.8 GiB needed \(a 2\.0 GiB spike \+ margin\)\.$/,
    );
    assert.equal(
      byId(cs, 'max-num-batched-tokens=4096').fits,
      false,
      'a smaller prefill chunk alone frees nothing beside the budget',
    );
  });

  test('larger steps fit but give up more, so they rank after', () => {
    const order = ids(cs);
    assert.ok(order.indexOf('gpu-memory-utilization=0.87') < order.indexOf('gpu-memory-utilization=0.85'));
    assert.ok(order.indexOf('gpu-memory-utilization=0.85') < order.indexOf('gpu-memory-utilization=0.80'));
    assert.equal(byId(cs, 'gpu-memory-utilization=0.80').headroomMb, 81920 - 6000 - 65536 - 1692);
  });

  test('without the free memory in the symptom nothing unexplained is added: 0.88 then fits (2138 + 1692 MiB)', () => {
    const plain = generateCandidates(
      input({
        gpu: { totalMb: GPU, freeMb: null, usedByOthersMb: 6000 },
        symptom: { family: 'torch_oom', allocMb: 2048 },
      }),
    );
    assert.equal(byId(plain, 'gpu-memory-utilization=0.88').headroomMb, 3830);
    assert.equal(byId(plain, 'gpu-memory-utilization=0.88').fits, true);
  });
});

describe('startup_free_memory: less free than the budget asks for', () => {
  // Others hold 20 000 MiB: 61 920 free. The budget may be at most 61 920 − 820 = 61 100 → 0.7458 → 0.74.
  const cs = generateCandidates(
    input({
      gpu: { totalMb: GPU, freeMb: 61920, usedByOthersMb: 20000 },
      symptom: { family: 'startup_free_memory', freeMb: 61920, totalMb: GPU },
    }),
  );

  test('lowers the utilization to what is free, and one step further', () => {
    assertWellFormed(cs);
    assert.deepEqual(ids(cs), ['gpu-memory-utilization=0.74', 'gpu-memory-utilization=0.72']);
    const [best] = cs;
    assert.ok(best?.fits);
    assert.equal(best.predictedVramMb, 60621); // 0.74 × 81 920 = 60 620.8
    assert.equal(best.headroomMb, 1299);
    assert.match(
      best.why,
      /^vLLM would not start: 60\.5 GiB free is less than the 72\.0 GiB gpu-memory-utilization 0\.90 asks for/,
    );
  });

  test('if the neighbours have shrunk since, it offers small steps below the current value', () => {
    const cs2 = generateCandidates(
      input({
        gpu: { totalMb: GPU, freeMb: 81920, usedByOthersMb: 0 },
        symptom: { family: 'startup_free_memory' },
      }),
    );
    assert.deepEqual(ids(cs2), ['gpu-memory-utilization=0.88', 'gpu-memory-utilization=0.85']);
    assert.ok(cs2.every((c) => c.fits));
  });

  test('when the smaller budget cannot hold max-model-len, it is paired with a shorter context or fp8 KV', () => {
    // Others 58 000 MiB: budget ≤ 81 920 − 58 000 − 820 = 23 100 → 0.28 → 22 937.6 MiB
    // KV = 22 937.6 − 15 317 − 1253.875 − 512 − 466 = 5388.725 MiB → 43 109 tokens: not 65 536;
    // with fp8 86 219 tokens do. At 0.26 (21 299.2 MiB): 3750.325 MiB → 30 002 tokens, fp8 60 004: still short.
    const long = { ...current, maxModelLen: 65536 };
    const cs2 = generateCandidates(
      input({
        current: long,
        gpu: { totalMb: GPU, freeMb: 23920, usedByOthersMb: 58000 },
        symptom: { family: 'startup_free_memory' },
      }),
    );
    assertWellFormed(cs2);
    assert.equal(byId(cs2, 'gpu-memory-utilization=0.28').fits, false);
    assert.deepEqual(ids(cs2.filter((c) => c.fits)), [
      'gpu-memory-utilization=0.28,kv-cache-dtype=fp8',
      'gpu-memory-utilization=0.28,max-model-len=43008',
      'gpu-memory-utilization=0.26,max-model-len=29696',
    ]);
    assert.equal(byId(cs2, 'gpu-memory-utilization=0.26,kv-cache-dtype=fp8').fits, false);
  });
});

describe('kv_cache_too_small: max-model-len needs more KV than is left', () => {
  // 131 072 tokens at util 0.5 with others holding 30 000 MiB; vLLM printed an estimate of 98 000 tokens.
  const long = { ...current, gpuMemoryUtilization: 0.5, maxModelLen: 131072 };
  const cs = generateCandidates(
    input({
      current: long,
      gpu: { totalMb: GPU, freeMb: 51920, usedByOthersMb: 30000 },
      symptom: { family: 'kv_cache_too_small', estimatedMaxModelLen: 98000 },
    }),
  );

  test("ranks fp8 KV, then more utilization (room is there), then max-model-len at vLLM's estimate", () => {
    assertWellFormed(cs);
    // costs: fp8 0.15; +0.12 utilization 0.24; 97 792 tokens 4 × (1 − 97 792/131 072) = 1.016; 97 280: 1.031
    assert.deepEqual(ids(cs).slice(0, 4), [
      'kv-cache-dtype=fp8',
      'gpu-memory-utilization=0.62', // floor2((81 920 − 30 000 − 820) / 81 920) = 0.62
      'max-model-len=97792', // 98 000 down to a multiple of 256
      'max-model-len=97280', // … of 1024
    ]);
    assert.ok(cs.slice(0, 4).every((c) => c.fits));
    assert.equal(
      byId(cs, 'max-model-len=97280').givesUp,
      'max context 131072 → 97280 tokens (longer requests are refused)',
    );
    assert.match(byId(cs, 'max-model-len=97280').why, /\(vLLM estimated 98000 tokens fit\)/);
  });

  test("vLLM's printed estimate wins over the model: the calibration moves every candidate's KV", () => {
    const d = diagnose(
      input({
        current: long,
        gpu: { totalMb: GPU, freeMb: 51920, usedByOthersMb: 30000 },
        symptom: { family: 'kv_cache_too_small', estimatedMaxModelLen: 98000 },
      }),
    );
    // model: 40 960 − 15 317 − 1253.875 − 512 − 466 = 23 411.125 MiB; vLLM: 98 000 × 0.125 = 12 250 MiB
    assert.equal(d.kvCalibrationMb, 12250 - 23411.125);
    assert.equal(d.baseline.fitLen, 98000);
    // so enforce-eager alone (+466 MiB → 101 728 tokens) does not reach 131 072
    assert.equal(byId(cs, 'enforce-eager=true').fits, false);
  });

  test('without an estimate in the symptom, the memory model supplies it', () => {
    const cs2 = generateCandidates(
      input({
        current: long,
        gpu: { totalMb: GPU, freeMb: 51920, usedByOthersMb: 30000 },
        symptom: { family: 'kv_cache_too_small' },
      }),
    );
    // 23 411.125 MiB × 8 = 187 289 tokens ≥ 131 072: by the model it fits, so no max-model-len candidate is needed
    assert.ok(!ids(cs2).some((id) => id.startsWith('max-model-len')));
  });
});

describe('no_cache_blocks: nothing left for the KV cache', () => {
  // util 0.22 (18 022.4 MiB) with 1024 sequences: the sampler alone needs 4823.5 MiB → KV −3096 MiB
  const cs = generateCandidates(
    input({
      current: { ...current, gpuMemoryUtilization: 0.22, maxNumSeqs: 1024 },
      gpu: { totalMb: GPU, freeMb: 21920, usedByOthersMb: 60000 },
      symptom: { family: 'no_cache_blocks' },
    }),
  );

  test('fewer sequences with the largest budget that fits (0.25) ranks first', () => {
    assertWellFormed(cs);
    // 0.25 × 81 920 = 20 480; activation 512 × 128 256 × 38 B + 64 MiB = 2443.75; KV = 20 480 − 15 317 − 2443.75 − 512 − 466 = 1741.25 MiB
    assert.equal(cs[0]?.id, 'gpu-memory-utilization=0.25,max-num-seqs=512');
    assert.equal(cs[0]?.fits, true);
    assert.equal(cs[0]?.headroomMb, 1440);
    assert.match(
      cs[0]?.why ?? '',
      /^vLLM would not start: no memory was left for KV cache blocks; .* and 1\.7 GiB of KV cache for requests up to 8192 tokens\.$/,
    );
  });

  test('each knob alone is tried and shown not to be enough', () => {
    for (const id of [
      'max-num-batched-tokens=4096',
      'max-num-seqs=512',
      'enforce-eager=true',
      'gpu-memory-utilization=0.25',
    ]) {
      assert.equal(byId(cs, id).fits, false, id);
    }
    assert.match(
      byId(cs, 'enforce-eager=true').why,
      /is not enough: no memory would be left for the KV cache\.$/,
    );
  });
});

describe('other run-time families', () => {
  for (const [family, phrase] of [
    ['cublas_alloc', /^cuBLAS could not allocate its workspace at run time \(assumed 1\.0 GiB\)/],
    ['nccl_alloc', /^NCCL could not allocate its buffers \(assumed 1\.0 GiB\)/],
    ['engine_dead', /^the engine died \(taken as a run-time OOM of 1\.0 GiB\)/],
  ] as const) {
    test(`${family}: lowers the utilization to make room for an assumed 1 GiB`, () => {
      // others 7000: budget ≤ 81 920 − 7000 − 820 − 1024 = 73 076 → 0.89
      const cs = generateCandidates(
        input({ gpu: { totalMb: GPU, freeMb: 1192, usedByOthersMb: 7000 }, symptom: { family } }),
      );
      assertWellFormed(cs);
      assert.equal(cs[0]?.id, 'gpu-memory-utilization=0.89');
      assert.match(cs[0]?.why ?? '', phrase);
      assert.equal(byId(cs, 'max-num-batched-tokens=4096').fits, false);
    });
  }
});

describe('no symptom family', () => {
  test('the memory model names the failure: too little free → startup_free_memory', () => {
    const i = input({ gpu: { totalMb: GPU, freeMb: 61920, usedByOthersMb: 20000 }, symptom: null });
    const d = diagnose(i);
    assert.equal(d.family, 'startup_free_memory');
    assert.equal(d.inferred, true);
    const cs = generateCandidates(i);
    assert.equal(cs[0]?.id, 'gpu-memory-utilization=0.74');
    assert.match(
      cs[0]?.why ?? '',
      /^No symptom family given, and the current config would ask for 72\.0 GiB with only 60\.5 GiB not used by others;/,
    );
  });

  test('an unknown family is inferred as well', () => {
    assert.equal(diagnose(input({ symptom: { family: 'gremlins', text: 'x' } })).inferred, true);
  });
});

describe('determinism', () => {
  const cases: CandidateInput[] = [
    input({
      gpu: { totalMb: GPU, freeMb: 500, usedByOthersMb: 6000 },
      symptom: { family: 'torch_oom', allocMb: 2048, freeMb: 500 },
    }),
    input({
      current: { ...current, maxModelLen: 131072 },
      gpu: { totalMb: GPU, freeMb: null, usedByOthersMb: 30000 },
      symptom: { family: 'kv_cache_too_small', estimatedMaxModelLen: 60000 },
    }),
    input({
      current: { ...current, gpuMemoryUtilization: 0.22, maxNumSeqs: 1024 },
      gpu: { totalMb: GPU, freeMb: null, usedByOthersMb: 60000 },
      symptom: { family: 'no_cache_blocks' },
    }),
  ];
  test('the same inputs give the same candidates in the same order', () => {
    for (const c of cases) {
      const a = generateCandidates(c);
      const b = generateCandidates(structuredClone(c));
      assert.deepEqual(b, a);
      assert.deepEqual(JSON.stringify(generateCandidates(c)), JSON.stringify(a));
    }
  });

  test('ties on what is given up go to the most headroom, then to the id', () => {
    const cs = generateCandidates(cases[2] as CandidateInput);
    for (let i = 1; i < cs.length; i++) {
      const [a, b] = [cs[i - 1], cs[i]] as [CandidateConfig, CandidateConfig];
      if (a.fits === b.fits && a.givesUp === b.givesUp) {
        assert.ok(
          a.headroomMb > b.headroomMb || (a.headroomMb === b.headroomMb && a.id < b.id),
          `${a.id} before ${b.id}`,
        );
      }
    }
  });

  test('equal cost: the most headroom first', () => {
    // A config that cannot start (KV < 0 at 0.2) gives up no KV by going lower: 0.18, 0.15 and 0.10 all cost 0.
    const cs = generateCandidates(
      input({ current: { ...current, gpuMemoryUtilization: 0.2 }, symptom: { family: 'engine_dead' } }),
    );
    const lower = ids(cs).filter((id) => /^gpu-memory-utilization=0\.(18|15|10)$/.test(id));
    assert.deepEqual(lower, [
      'gpu-memory-utilization=0.10',
      'gpu-memory-utilization=0.15',
      'gpu-memory-utilization=0.18',
    ]);
  });

  test('the comparator: fits, then cost, then headroom, then id', () => {
    const c = (id: string, fits: boolean, cost: number, headroomMb: number) => ({
      id,
      fits,
      cost,
      headroomMb,
    });
    const sorted = [
      c('a', false, 0, 9000),
      c('b', true, 0.5, 100),
      c('c', true, 0.2, 100),
      c('d', true, 0.2, 5000),
      c('e', true, 0.2, 5000),
      c('0', true, 0.2, 4000),
    ].sort(compareCandidates);
    assert.deepEqual(
      sorted.map((x) => x.id),
      ['d', 'e', '0', 'c', 'b', 'a'],
    );
  });

  test('equal cost and headroom: by id', () => {
    // no_cache_blocks: CUDA graphs off (0.25) and half the prefill chunk (0.5 × 0.5) cost the same at the same budget
    const cs = generateCandidates(cases[2] as CandidateInput);
    const a = byId(cs, 'enforce-eager=true');
    const b = byId(cs, 'max-num-batched-tokens=4096');
    assert.equal(a.headroomMb, b.headroomMb);
    assert.equal(ids(cs).indexOf(a.id) + 1, ids(cs).indexOf(b.id));
  });

  test('a zero-size GPU gives no candidates rather than nonsense', () => {
    assert.deepEqual(generateCandidates(input({ gpu: { totalMb: 0, freeMb: 0, usedByOthersMb: 0 } })), []);
  });
});

describe('floors: candidates stay useful', () => {
  // Issue 13 point 6: vLLM printed "the estimated maximum model length is 16" and max-model-len=16 was ranked
  // as a fitting candidate; a one-token probe would have passed it.
  // Others hold 7000 MiB, so the utilization cannot go up (fitUtil = 0.90) and no other knob reaches 8192.
  const crippling = input({
    gpu: { totalMb: GPU, freeMb: null, usedByOthersMb: 7000 },
    symptom: { family: 'kv_cache_too_small', estimatedMaxModelLen: 16 },
  });

  test('without floors (all at 1) max-model-len=16 is the one fitting candidate: the broken behaviour', () => {
    const open = generateCandidates({
      ...crippling,
      floors: { maxModelLen: 1, maxNumSeqs: 1, maxNumBatchedTokens: 1, gpuMemoryUtilization: 0.01 },
    });
    assert.deepEqual(ids(open.filter((c) => c.fits)), [
      'max-model-len=3072,enforce-eager=true',
      'max-model-len=16',
      'max-model-len=256,max-num-batched-tokens=4096',
      'max-model-len=32,kv-cache-dtype=fp8',
    ]);
  });

  test('an estimate of 16 tokens gives no candidate below the floor, and says why', () => {
    const plan = planCandidates(crippling);
    assert.equal(plan.floors.values.maxModelLen, 4096);
    assert.ok(plan.candidates.every((c) => c.changes['max-model-len'] === undefined));
    assert.deepEqual(
      ids(plan.candidates.filter((c) => c.fits)),
      [],
      'no fitting candidate within the floors',
    );
    assert.deepEqual(plan.belowFloor[0], {
      id: 'max-model-len=16',
      wouldFit: true,
      reason: 'max-model-len 16 below the floor 4096 (KLR_CANDIDATE_MIN_MAX_MODEL_LEN)',
    });
    assert.deepEqual(
      plan.belowFloor.filter((b) => b.wouldFit).map((b) => b.id),
      [
        'max-model-len=16',
        'max-model-len=32,kv-cache-dtype=fp8',
        'max-model-len=3072,enforce-eager=true',
        'max-model-len=256,max-num-batched-tokens=4096',
      ],
    );
  });

  test("the operator's floor wins and is named", () => {
    const plan = planCandidates({ ...crippling, floors: { maxModelLen: 8192 } });
    assert.equal(plan.floors.sources.maxModelLen, 'setting');
    assert.match(
      plan.belowFloor[0]?.reason ?? '',
      /^max-model-len 16 below the floor 8192 \(KLR_CANDIDATE_MIN_MAX_MODEL_LEN\)$/,
    );
  });

  test('derived floors: a quarter of the current value, at least the minimum, never above the current value', () => {
    assert.deepEqual(candidateFloors(serving8k).values, {
      gpuMemoryUtilization: 0.23, // ceil2(0.9 / 4)
      maxModelLen: 4096, // max(4096, 2048)
      maxNumBatchedTokens: 2048, // max(1024, 2048)
      maxNumSeqs: 64, // max(8, 64)
    });
    const long: ServingConfig = {
      ...serving8k,
      maxModelLen: 131072,
      maxNumSeqs: 4,
      maxNumBatchedTokens: 512,
    };
    assert.deepEqual(candidateFloors(long).values, {
      gpuMemoryUtilization: 0.23,
      maxModelLen: 32768,
      maxNumBatchedTokens: 512, // already below the 1024 minimum: not lowered
      maxNumSeqs: 4,
    });
    assert.deepEqual(
      candidateFloors(long, { maxModelLen: 100_000, maxNumSeqs: null }).values.maxModelLen,
      100_000,
    );
  });

  test("vLLM's estimate above the floor is still offered (the usual kv_cache_too_small remedy)", () => {
    // max-model-len unset → 131 072; vLLM says 60 000 fit. The floor is 32 768, so 59 904 and 59 392 stay candidates.
    const cs = generateCandidates(
      input({
        current: { ...current, maxModelLen: 131072 },
        gpu: { totalMb: GPU, freeMb: null, usedByOthersMb: 7000 },
        symptom: { family: 'kv_cache_too_small', estimatedMaxModelLen: 60000 },
      }),
    );
    assert.equal(byId(cs, 'max-model-len=59392').fits, true);
    assert.equal(byId(cs, 'max-model-len=59904').fits, true);
  });

  test('every knob: fewer sequences or a smaller prefill chunk than the floor are left out', () => {
    const plan = planCandidates({
      ...input({
        current: { ...current, gpuMemoryUtilization: 0.22, maxNumSeqs: 1024 },
        gpu: { totalMb: GPU, freeMb: 21920, usedByOthersMb: 60000 },
        symptom: { family: 'no_cache_blocks' },
      }),
      floors: { maxNumSeqs: 512, maxNumBatchedTokens: 4096 },
    });
    for (const c of plan.candidates) {
      assert.ok(Number(c.changes['max-num-seqs'] ?? 1024) >= 512, c.id);
      assert.ok(Number(c.changes['max-num-batched-tokens'] ?? 8192) >= 4096, c.id);
    }
    assert.ok(
      plan.belowFloor.some((b) =>
        /^max-num-seqs 256 below the floor 512 \(KLR_CANDIDATE_MIN_MAX_NUM_SEQS\)$/.test(b.reason),
      ),
    );
    assert.ok(
      plan.belowFloor.some((b) =>
        /max-num-batched-tokens 2048 below the floor 4096 \(KLR_CANDIDATE_MIN_MAX_NUM_BATCHED_TOKENS\)/.test(
          b.reason,
        ),
      ),
    );
    const util = planCandidates({
      ...input({
        gpu: { totalMb: GPU, freeMb: 500, usedByOthersMb: 6000 },
        symptom: { family: 'torch_oom', allocMb: 2048, freeMb: 500, totalMb: GPU },
      }),
      floors: { gpuMemoryUtilization: 0.86 },
    });
    assert.deepEqual(
      util.candidates
        .map((c) => c.changes['gpu-memory-utilization'])
        .filter((u) => u !== undefined && Number(u) < 0.86),
      [],
    );
    assert.ok(
      util.belowFloor.some((b) =>
        b.reason.startsWith(
          'gpu-memory-utilization 0.85 below the floor 0.86 (KLR_CANDIDATE_MIN_GPU_MEMORY_UTILIZATION)',
        ),
      ),
    );
    assert.equal(
      util.candidates[0]?.id,
      'gpu-memory-utilization=0.87',
      'the best candidate is above the floor and kept',
    );
  });

  test('property: over random configs, symptoms and floors no candidate lowers a knob below its floor', () => {
    const rng = prng(0x6f10_0013);
    const pow2 = (lo: number, hi: number) => 2 ** rng.int(lo, hi);
    for (let i = 0; i < 400; i++) {
      const maxNumBatchedTokens = rng.pick([512, 1024, 2048, 4096, 8192, 16384, 3000]);
      const cur: ServingConfig = {
        gpuMemoryUtilization: rng.int(10, 98) / 100,
        maxModelLen: rng.chance(0.2) ? rng.int(16, 200_000) : pow2(10, 17),
        maxNumBatchedTokens,
        maxNumSeqs: Math.min(maxNumBatchedTokens, rng.pick([1, 4, 8, 16, 64, 128, 256, 1024, 300])),
        kvCacheDtype: rng.pick(['auto', 'auto', 'fp8'] as const),
        enforceEager: rng.chance(0.2),
        tensorParallelSize: rng.pick([1, 1, 2]),
      };
      const totalMb = rng.pick([24576, 40960, 81920, 81559, 143771]);
      const others = rng.int(0, Math.floor(totalMb * 0.7));
      const family = rng.chance(0.15) ? undefined : rng.pick(FAMILIES);
      const floors = rng.chance(0.5)
        ? {}
        : {
            maxModelLen: rng.chance(0.5) ? rng.int(1, 150_000) : null,
            maxNumSeqs: rng.chance(0.5) ? rng.int(1, 600) : null,
            maxNumBatchedTokens: rng.chance(0.5) ? rng.int(1, 20_000) : null,
            gpuMemoryUtilization: rng.chance(0.5) ? rng.int(1, 100) / 100 : null,
          };
      const c: CandidateInput = {
        model: llama,
        current: cur,
        gpu: { totalMb, freeMb: rng.chance(0.5) ? totalMb - others : null, usedByOthersMb: others },
        symptom: {
          ...(family ? { family } : {}),
          ...(rng.chance(0.5)
            ? { estimatedMaxModelLen: rng.pick([16, 256, 1000, 3000, 5000, rng.int(1, 300_000)]) }
            : {}),
          ...(rng.chance(0.4) ? { allocMb: rng.int(1, 8192) } : {}),
          ...(rng.chance(0.3) ? { freeMb: rng.int(0, 4096) } : {}),
        },
        restartEstimateMs: RESTART_MS,
        floors,
      };
      const plan = planCandidates(c);
      const where = `case ${i}: ${JSON.stringify({ cur, totalMb, others, family, floors: plan.floors.values })}`;
      for (const cand of plan.candidates) {
        const config = { ...cur };
        for (const knob of FLOOR_KNOBS) {
          const v =
            cand.changes[
              {
                maxModelLen: 'max-model-len',
                maxNumSeqs: 'max-num-seqs',
                maxNumBatchedTokens: 'max-num-batched-tokens',
                gpuMemoryUtilization: 'gpu-memory-utilization',
              }[knob]
            ];
          if (typeof v === 'number') config[knob] = v;
          assert.ok(
            config[knob] >= Math.min(plan.floors.values[knob], cur[knob]) - 1e-9,
            `${cand.id} lowers ${knob} below its floor ${plan.floors.values[knob]}; ${where}`,
          );
        }
      }
      assert.deepEqual(planCandidates(structuredClone(c)), plan, `deterministic; ${where}`);
      for (const b of plan.belowFloor)
        assert.ok(!ids(plan.candidates).includes(b.id), `${b.id} both kept and left out`);
    }
  });
});

describe('predictCandidates activity', () => {
  const CONFIG = `# chat service
model: ${join(MODELS, 'llama-3-8b-like')}
served-model-name: chat
gpu-memory-utilization: 0.9
max-model-len: 8192
max-num-seqs: 256
`;
  const uuid = 'GPU-513536b6-7d19-9063-b049-1e69664bb298';
  const snapshot = (processes: VramSnapshot['processes'], usedMb: number, freeMb: number): VramSnapshot => ({
    measuredAt: '2026-11-28T03:00:00Z',
    gpus: [
      { index: 0, uuid, name: 'NVIDIA H100 80GB HBM3', totalMb: 81559, usedMb, freeMb, utilizationPct: 80 },
    ],
    processes,
  });

  function withConfig<T>(text: string, fn: (path: string) => Promise<T>): Promise<T> {
    const dir = mkdtempSync(join(tmpdir(), 'klr-predict-'));
    const path = join(dir, 'vllm.yaml');
    writeFileSync(path, text);
    return fn(path).finally(() => rmSync(dir, { recursive: true, force: true }));
  }

  test('reads config, model and measurement; others = used − the vLLM process; basis says so', async () => {
    await withConfig(CONFIG, async (configPath) => {
      const predict = createPredictCandidates({
        configPath,
        restartEstimateMs: async () => 40_000,
        now: () => new Date('2026-11-28T03:00:01Z'),
      });
      // usable = 74 211 + 6810 = 81 021 MiB; the vLLM process holds 72 000 → others 2211
      const r = await predict({
        host: 'gpu-a',
        kind: 'vllm_oom',
        vram: snapshot(
          [
            { pid: 118233, processName: 'VLLM::EngineCore', usedMb: 72000, gpuUuid: uuid },
            { pid: 900, processName: 'python3', usedMb: 2200, gpuUuid: uuid },
          ],
          74211,
          6810,
        ),
        symptom: { family: 'torch_oom', allocMb: 4096, gpu: 0 },
      });
      assert.equal(r.at, '2026-11-28T03:00:01.000Z');
      assert.match(
        r.basis,
        /^torch_oom on GPU 0 \(NVIDIA H100 80GB HBM3\): 81021 MiB usable, 2211 MiB held by other processes \(the service \(pid 118233\) holds 72000 MiB\), 6810 MiB free; model chat from .*config\.json; current gpu-memory-utilization 0\.90, max-model-len 8192, max-num-batched-tokens 8192, max-num-seqs 256,/,
      );
      assertWellFormed(r.candidates.map((c) => ({ ...c, predictedDowntimeMs: RESTART_MS })));
      assert.ok(r.candidates.every((c) => c.predictedDowntimeMs === 40_000));
      // budget ≤ 81 021 − 2211 − 811 − 4096 = 73 903 → floor2(0.9121) = 0.91 ≥ 0.90: the small steps all fit
      assert.equal(r.candidates[0]?.id, 'gpu-memory-utilization=0.88');
      assert.equal(r.candidates[0]?.fits, true);
    });
  });

  test('nvidia-smi shows vLLM as "python3": the process the size of its budget is taken', async () => {
    await withConfig(CONFIG, async (configPath) => {
      const predict = createPredictCandidates({ configPath, restartEstimateMs: () => 1000 });
      const r = await predict({
        host: 'gpu-a',
        kind: 'vllm_oom',
        vram: snapshot(
          [
            { pid: 10, processName: 'python3', usedMb: 3000, gpuUuid: uuid },
            { pid: 11, processName: 'python3', usedMb: 72919, gpuUuid: uuid },
          ],
          75919,
          5102,
        ),
        symptom: { family: 'torch_oom', allocMb: 1024 },
      });
      assert.match(
        r.basis,
        /3000 MiB held by other processes \(pid 11 holds 72919 MiB, the size of the service's budget\)/,
      );
    });
  });

  test('vLLM caught mid-start ("python3", weights only): known by its parent `vllm serve`, not taken for another process', async () => {
    // A service restarting after its OOM holds its weights but no KV cache yet: neither its name nor its
    // budget gives it away. Taken for another process, its 16 GB would shrink every candidate (the demo once
    // promoted 0.75 for this).
    const serve = await family(['--', 'vllm', 'serve', 'chat'], ['--', 'spawn_main']);
    await withConfig(CONFIG, async (configPath) => {
      const predict = createPredictCandidates({ configPath, restartEstimateMs: () => 1000 });
      const r = await predict({
        host: 'gpu-a',
        kind: 'vllm_oom',
        vram: snapshot(
          [{ pid: serve.child, processName: 'python3', usedMb: 16_000, gpuUuid: uuid }],
          16_000,
          65_559,
        ),
        symptom: { family: 'torch_oom', allocMb: 1024 },
      });
      assert.match(
        r.basis,
        new RegExp(
          `0 MiB held by other processes \\(the service \\(pid ${serve.child}\\) holds 16000 MiB\\)`,
        ),
      );
      assert.equal(
        r.candidates[0]?.id,
        'gpu-memory-utilization=0.88',
        r.candidates.map((c) => c.id).join(', '),
      );
    });
  });

  test('no measurement: the GPU comes from the symptom', async () => {
    await withConfig(CONFIG, async (configPath) => {
      const predict = createPredictCandidates({ configPath, restartEstimateMs: () => 1000 });
      const r = await predict({
        host: 'gpu-a',
        kind: 'vllm_start',
        vram: null,
        symptom: { family: 'startup_free_memory', totalMb: 81920, freeMb: 61920 },
      });
      assert.match(r.basis, /81920 MiB usable, 20000 MiB held by other processes \(from the symptom/);
      assert.equal(r.candidates[0]?.id, 'gpu-memory-utilization=0.74');
    });
  });

  test('no measurement and no sizes in the symptom: non-retryable PredictionImpossible', async () => {
    await withConfig(CONFIG, async (configPath) => {
      const predict = createPredictCandidates({ configPath, restartEstimateMs: () => 1000 });
      await assert.rejects(
        predict({ host: 'gpu-a', kind: 'k', vram: null, symptom: { family: 'torch_oom' } }),
        (e: unknown) =>
          e instanceof ApplicationFailure &&
          e.type === PREDICTION_IMPOSSIBLE &&
          e.nonRetryable &&
          /GPU memory is unknown/.test(e.message),
      );
    });
  });

  test('a broken config or an unknown GPU index is PredictionImpossible, naming the cause', async () => {
    await withConfig('model: [x\n', async (configPath) => {
      const predict = createPredictCandidates({ configPath, restartEstimateMs: () => 1000 });
      await assert.rejects(
        predict({ host: 'h', kind: 'k', vram: snapshot([], 100, 100), symptom: null }),
        (e: unknown) =>
          e instanceof ApplicationFailure &&
          e.type === PREDICTION_IMPOSSIBLE &&
          /not valid YAML/.test(e.message),
      );
    });
    await withConfig(CONFIG, async (configPath) => {
      const predict = createPredictCandidates({ configPath, restartEstimateMs: () => 1000 });
      await assert.rejects(
        predict({ host: 'h', kind: 'k', vram: snapshot([], 100, 100), symptom: { gpu: 3 } }),
        (e: unknown) =>
          e instanceof ApplicationFailure &&
          e.type === PREDICTION_IMPOSSIBLE &&
          /GPU 3 is not in the VRAM measurement/.test(e.message),
      );
    });
  });

  test('an estimate of 16 tokens: the basis says there is no fitting candidate within the floors, and why', async () => {
    await withConfig(CONFIG, async (configPath) => {
      const symptom = {
        family: 'kv_cache_too_small',
        estimatedMaxModelLen: 16,
        totalMb: 81920,
        freeMb: 74920,
      };
      const derived = await createPredictCandidates({ configPath, restartEstimateMs: () => 1000 })({
        host: 'h',
        kind: 'vllm_oom',
        vram: null,
        symptom,
      });
      assert.ok(derived.candidates.every((c) => !c.fits && c.changes['max-model-len'] === undefined));
      assert.match(
        derived.basis,
        /; floors gpu-memory-utilization ≥ 0\.23 \(derived\), max-model-len ≥ 4096 \(derived\), max-num-batched-tokens ≥ 2048 \(derived\), max-num-seqs ≥ 64 \(derived\); vLLM release unknown \(no banner in the log\), the conservative plan \(graphs and CUDA context inside the budget\); not calibrated \(no KLR_SERVICE_LOG\); \d+ candidates, 0 predicted to fit: no fitting candidate within the floors; left out below the floors: max-model-len=16 \(it would fit\): max-model-len 16 below the floor 4096 \(KLR_CANDIDATE_MIN_MAX_MODEL_LEN\);/,
      );
      const set = await createPredictCandidates({
        configPath,
        restartEstimateMs: () => 1000,
        floors: { maxModelLen: 2048 },
      })({ host: 'h', kind: 'vllm_oom', vram: null, symptom });
      assert.match(set.basis, /max-model-len ≥ 2048 \(KLR_CANDIDATE_MIN_MAX_MODEL_LEN\)/);
      assert.match(set.basis, /max-model-len 16 below the floor 2048 \(KLR_CANDIDATE_MIN_MAX_MODEL_LEN\)/);
    });
  });

  test('the model profile file wins (KLR_MODEL_PROFILE)', async () => {
    await withConfig('model: some/unknown-model\n', async (configPath) => {
      const predict = createPredictCandidates({
        configPath,
        modelProfilePath: join(MODELS, 'llama-3-8b.profile.yaml'),
        restartEstimateMs: () => 1000,
      });
      const r = await predict({
        host: 'h',
        kind: 'k',
        vram: null,
        symptom: { family: 'startup_free_memory', totalMb: 81920, freeMb: 61920 },
      });
      assert.match(r.basis, /model acme\/llama-3-8b-like from .*llama-3-8b\.profile\.yaml/);
    });
  });
});

describe("calibration: vLLM's own start-up report of the running config", () => {
  const long = { ...current, gpuMemoryUtilization: 0.5, maxModelLen: 131072 };
  const base = {
    current: long,
    gpu: { totalMb: GPU, freeMb: 51920, usedByOthersMb: 30000 },
    symptom: { family: 'kv_cache_too_small' as const, estimatedMaxModelLen: 98000 },
  };

  test('the measured KV cache is the baseline: it wins over the estimate in the symptom', () => {
    // model 23 411.125 MiB (worked above); vLLM printed 11.5 GiB = 11 776 MiB
    const d = diagnose(input({ ...base, measured: { kvCacheMb: 11776 } }));
    assert.equal(d.kvCalibrationMb, 11776 - 23411.125);
    assert.equal(d.baseline.fitLen, 94208); // 11 776 MiB × 8 tokens/MiB = 94 208 tokens, a multiple of 16
  });

  test("every candidate's KV is the model's difference added to the measurement", () => {
    const measured = 11776;
    const plan = planCandidates(input({ ...base, measured: { kvCacheMb: measured } }));
    const modelCurrent = planMemory(llama, long, GPU).kvCacheMb;
    assert.ok(plan.candidates.length > 3);
    for (const c of plan.candidates) {
      const config = { ...long, ...configOf(c) };
      const expected = planMemory(llama, config, GPU).kvCacheMb + (measured - modelCurrent);
      assert.equal(c.predictedKvMb, Math.round(expected), c.id);
      const perToken = planMemory(llama, config, GPU).kvBytesPerToken;
      assert.equal(c.predictedKvTokens, expected > 0 ? Math.floor((expected * 1024 * 1024) / perToken) : 0);
    }
    // less KV measured than the estimate implied: max-model-len now goes down to what was measured
    assert.ok(ids(plan.candidates).includes('max-model-len=94208'), ids(plan.candidates).join(' | '));
  });

  test('a measurement that is not a number is ignored', () => {
    const d = diagnose(input({ ...base, measured: { kvCacheMb: Number.NaN } }));
    assert.equal(d.kvCalibrationMb, 12250 - 23411.125); // back to the estimate in the symptom
  });
});

/** A candidate's changes as serving-config fields (the inverse of SERVING_KEYS). */
function configOf(c: CandidateConfig): Partial<ServingConfig> {
  const fields = Object.fromEntries(Object.entries(SERVING_KEYS).map(([f, k]) => [k, f]));
  return Object.fromEntries(
    Object.entries(c.changes).map(([k, v]) => [fields[k], v]),
  ) as Partial<ServingConfig>;
}

describe('predictCandidates activity: calibrated to the log (KLR_SERVICE_LOG)', () => {
  const CONFIG = `model: ${join(MODELS, 'llama-3-8b-like')}
served-model-name: chat
gpu-memory-utilization: 0.9
max-model-len: 8192
max-num-seqs: 256
`;
  /** A V1 0.10 start as vLLM prints it (test/fixtures/vllm-startup-reports has real ones). */
  const start = (kvGiB: string, len = '8,192') => [
    'INFO 11-28 02:58:01 [api_server.py:1805] vLLM API server version 0.10.1.1',
    '(EngineCore_0 pid=311) INFO 11-28 02:59:12 [gpu_model_runner.py:1953] Model loading took 14.9596 GiB and 4.1 seconds',
    `(EngineCore_0 pid=311) INFO 11-28 02:59:40 [gpu_worker.py:276] Available KV cache memory: ${kvGiB} GiB`,
    '(EngineCore_0 pid=311) INFO 11-28 02:59:40 [kv_cache_utils.py:849] GPU KV cache size: 421,888 tokens',
    `(EngineCore_0 pid=311) INFO 11-28 02:59:40 [kv_cache_utils.py:853] Maximum concurrency for ${len} tokens per request: 51.50x`,
  ];

  async function predictWith(logLines: string[] | null) {
    const dir = mkdtempSync(join(tmpdir(), 'klr-calibrate-'));
    try {
      const configPath = join(dir, 'vllm.yaml');
      writeFileSync(configPath, CONFIG);
      const logPath = join(dir, 'vllm.log');
      if (logLines) writeFileSync(logPath, `${logLines.join('\n')}\n`);
      const predict = createPredictCandidates({ configPath, logPath, restartEstimateMs: () => 1000 });
      return await predict({
        host: 'h',
        kind: 'vllm_oom',
        vram: null,
        symptom: { family: 'torch_oom', allocMb: 4096, totalMb: 81920, freeMb: 2000 },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test('the running config measured by vLLM: the recommendation carries both figures and the basis says so', async () => {
    const r = await predictWith([
      'INFO noise',
      ...start('50.00'),
      'INFO 11-28 03:00:00 [loggers.py:123] Engine 000: Avg prompt throughput: 0.0 tokens/s',
    ]);
    // vLLM 0.10.1.1 (its banner): the three-terms accounting, others outside the budget
    const release = parseVllmRelease('0.10.1.1');
    const modelled = planMemory(llama3_8b, { ...serving8k, maxNumSeqs: 256 }, 81920, { release }).kvCacheMb;
    assert.ok(r.calibration);
    assert.equal(r.calibration.vllmVersion, '0.10.1.1');
    assert.equal(r.calibration.measuredKvMb, 51200);
    assert.equal(r.calibration.measuredKvTokens, 421888);
    assert.equal(r.calibration.measuredWeightsMb, Math.round(14.9596 * 1024));
    assert.ok(
      Math.abs(r.calibration.predictedKvMb - modelled) <= 1,
      `${r.calibration.predictedKvMb} vs ${modelled}`,
    );
    // (predicted − measured) / measured, from the unrounded prediction
    assert.ok(Math.abs((r.calibration.kvErrorRatio ?? NaN) - (modelled - 51200) / 51200) < 1e-4);
    assert.match(
      r.basis,
      /; vLLM 0\.10\.1\.1 \(the log's banner\), its three terms accounting; calibrated to vLLM 0\.10\.1\.1's own start-up report: KV cache 50\.00 GiB measured, \d+\.\d\d GiB modelled \([+−]\d+\.\d %\)/,
    );
    // every candidate's KV is predicted from the 50 GiB measured
    const current = r.candidates.find((c) => c.id === 'gpu-memory-utilization=0.88');
    assert.ok(current?.predictedKvMb !== undefined && current.predictedKvMb < 51200);
  });

  test('only the latest start counts, and a start of another config is not taken for this one', async () => {
    const r = await predictWith([...start('50.00'), ...start('40.00')]);
    assert.equal(r.calibration?.measuredKvMb, 40960);
    const other = await predictWith(start('50.00', '32,768'));
    assert.equal(other.calibration, undefined);
    assert.match(
      other.basis,
      /not calibrated: the log's last start ran max-model-len 32768, the config says 8192 \(not restarted since\?\)/,
    );
  });

  test('no log, no start-up report, an impossible figure: not calibrated, and the basis says why', async () => {
    const none = await predictWith(null);
    assert.equal(none.calibration, undefined);
    assert.match(none.basis, /not calibrated \(no vLLM start-up report in .*vllm\.log\)/);
    const quiet = await predictWith(['INFO 11-28 02:58:01 nothing about memory']);
    assert.match(quiet.basis, /not calibrated \(no vLLM start-up report/);
    const forged = await predictWith(start('500.00'));
    assert.equal(forged.calibration, undefined);
    assert.match(
      forged.basis,
      /not calibrated: the log's KV cache of 500\.00 GiB cannot be on a 80\.00 GiB GPU/,
    );
  });
});

describe("the release's accounting in the candidates", () => {
  const release = parseVllmRelease('0.19.0');

  test('predicted VRAM is the budget plus what the release keeps beside it (the context, the graphs)', () => {
    const withRelease = generateCandidates(
      input({ release, symptom: { family: 'torch_oom', allocMb: 2048 } }),
    );
    const blind = generateCandidates(input({ symptom: { family: 'torch_oom', allocMb: 2048 } }));
    const c = byId(withRelease, 'gpu-memory-utilization=0.88');
    const plan = planMemory(llama, { ...current, gpuMemoryUtilization: 0.88 }, GPU, { release });
    assert.equal(c.predictedVramMb, Math.round(plan.requestedMb + plan.outsideBudgetMb));
    assert.ok(plan.outsideBudgetMb > 512);
    assert.equal(byId(blind, 'gpu-memory-utilization=0.88').predictedVramMb, Math.round(0.88 * GPU));
  });

  test('the fitting utilization leaves room for what the release keeps outside the budget', () => {
    // A 24 GiB GPU at 0.98 whose first request needs 2 GiB more: the utilization that fits must leave the
    // spike, the margin and the graphs/context the release keeps beside its budget. (It once left out the
    // last, so every utilization it proposed was predicted not to fit and no canary was ever tried.)
    const gpu = 24_576;
    const cfg = { ...current, gpuMemoryUtilization: 0.98, maxModelLen: 8192 };
    const oom = { family: 'torch_oom', allocMb: 2048, freeMb: 492, totalMb: gpu } as const;
    for (const r of [parseVllmRelease('0.10.1.1'), release]) {
      const candidates = generateCandidates(
        input({
          release: r,
          current: cfg,
          gpu: { totalMb: gpu, freeMb: null, usedByOthersMb: 0 },
          symptom: oom,
        }),
      );
      const best = candidates.find((c) => c.fits);
      assert.ok(best, `${r?.version}: ${candidates.map((c) => `${c.id} ${c.headroomMb}`).join('; ')}`);
      assert.ok(best.headroomMb >= 2048 + safetyMarginMb(gpu), `${best.id}: ${best.headroomMb} MiB free`);
      const plan = planMemory(llama, cfg, gpu, { release: r });
      assert.ok(plan.outsideBudgetMb > 0, 'the case needs memory outside the budget');
    }
  });

  test('a multimodal model: no candidate is said to fit until vLLM measured the running config', () => {
    const vlm = { ...llama, kind: 'multimodal' as const };
    const unmeasured = generateCandidates(input({ model: vlm, release, symptom: { family: 'torch_oom' } }));
    assert.ok(unmeasured.length > 0);
    for (const c of unmeasured) {
      assert.equal(c.fits, false, c.id);
      assert.equal(c.mustBeMeasured, true);
      assert.equal(c.predictedKvMb, undefined);
      assert.match(c.why, /it must be measured: a multimodal model's encoder profiling run/);
    }
    const measured = generateCandidates(
      input({ model: vlm, release, symptom: { family: 'torch_oom' }, measured: { kvCacheMb: 20_000 } }),
    );
    assert.ok(
      measured.some((c) => c.fits && c.mustBeMeasured === undefined && c.predictedKvMb !== undefined),
    );
  });
});

describe('predictCandidates activity: the release from GET /version when the log names none', () => {
  const CONFIG = `model: ${join(MODELS, 'llama-3-8b-like')}\nmax-model-len: 8192\n`;
  async function withVersionServer<T>(
    answer: (res: ServerResponse) => void,
    fn: (url: string) => Promise<T>,
  ) {
    const server = createServer((req, res) =>
      req.url === '/version' ? answer(res) : res.writeHead(404).end(),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      return await fn(`http://127.0.0.1:${port}`);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
  async function basisWith(serviceUrl: string | null): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'klr-version-'));
    try {
      const configPath = join(dir, 'vllm.yaml');
      writeFileSync(configPath, CONFIG);
      const r = await createPredictCandidates({ configPath, serviceUrl, restartEstimateMs: () => 1000 })({
        host: 'h',
        kind: 'vllm_oom',
        vram: null,
        symptom: { family: 'startup_free_memory', totalMb: 81920, freeMb: 61920 },
      });
      return r.basis;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test('the service answers its version: the plan follows that release', async () => {
    await withVersionServer(
      (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"version":"0.8.2"}'),
      async (url) =>
        assert.match(await basisWith(url), /; vLLM 0\.8\.2 \(GET \/version\), its all non torch accounting;/),
    );
  });

  test('a hostile or broken answer leaves the release unknown, and says why', async () => {
    const cases: Array<[(res: ServerResponse) => void, RegExp]> = [
      [(res) => res.writeHead(500).end('boom'), /GET \/version: HTTP 500/],
      [(res) => res.writeHead(200).end('<html>'), /GET \/version: an answer that is not JSON/],
      [(res) => res.writeHead(200).end('{"version": 42}'), /JSON without a "version" string/],
      [
        (res) => res.writeHead(200).end(`{"version":"${'9'.repeat(10_000)}"}`),
        /an answer of \d+ bytes, not a version/,
      ],
      [(res) => res.writeHead(200).end('{"version":"; rm -rf /"}'), /GET \/version answered "; rm -rf \/"/],
    ];
    for (const [answer, why] of cases) {
      await withVersionServer(answer, async (url) => {
        const basis = await basisWith(url);
        assert.match(basis, /vLLM release unknown \(no banner in the log; /);
        assert.match(basis, why);
        assert.match(basis, /the conservative plan/);
      });
    }
    // Nothing listening (a port just freed): refused, not a hang.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    assert.match(await basisWith(`http://127.0.0.1:${port}`), /GET \/version: connection refused/);
  });
});
