// A canary's prediction check: the candidate's predicted KV cache against what vLLM printed at its start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { predictionCheck } from '../../src/workflows/healing-messages.js';

test('predicted against measured, as (predicted − measured) / measured', () => {
  assert.deepEqual(predictionCheck({ predictedKvMb: 10_500 }, { kvCacheMb: 10_000 }), {
    predictedKvMb: 10_500,
    measuredKvMb: 10_000,
    errorRatio: 0.05,
  });
  assert.equal(predictionCheck({ predictedKvMb: 9_000 }, { kvCacheMb: 10_000 })?.errorRatio, -0.1);
  // vLLM printed a negative KV cache (no cache blocks): the ratio keeps the sign of the miss
  assert.equal(predictionCheck({ predictedKvMb: 512 }, { kvCacheMb: -512 })?.errorRatio, 2);
});

test('no check without both figures: a candidate from 0.1 (no KV predicted), no figure printed, or zero', () => {
  assert.equal(predictionCheck({}, { kvCacheMb: 10_000 }), null);
  assert.equal(predictionCheck({ predictedKvMb: 10_000 }, undefined), null);
  assert.equal(predictionCheck({ predictedKvMb: 10_000 }, { kvCacheMb: null }), null);
  assert.equal(predictionCheck({ predictedKvMb: 10_000 }, { kvCacheMb: 0 }), null);
});
