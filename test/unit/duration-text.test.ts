import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { formatDuration } from '../../src/domain/duration-text.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

describe('formatDuration', () => {
  test('zero, negative and NaN read as "0 s"', () => {
    assert.equal(formatDuration(0), '0 s');
    assert.equal(formatDuration(-5 * S), '0 s');
    assert.equal(formatDuration(-0.5), '0 s');
    assert.equal(formatDuration(Number.NaN), '0 s');
    assert.equal(formatDuration(Number.NEGATIVE_INFINITY), '0 s');
  });

  test('rounds down to whole seconds', () => {
    assert.equal(formatDuration(999), '0 s');
    assert.equal(formatDuration(1000), '1 s');
    assert.equal(formatDuration(41 * S + 999), '41 s');
    assert.equal(formatDuration(59 * S + 999), '59 s');
  });

  test('minutes show seconds unless they are zero', () => {
    assert.equal(formatDuration(M), '1 m');
    assert.equal(formatDuration(5 * M + 3 * S), '5 m 3 s');
    assert.equal(formatDuration(5 * M + 3 * S + 999), '5 m 3 s');
    assert.equal(formatDuration(H - 1), '59 m 59 s');
  });

  test('hours drop seconds and show minutes unless they are zero', () => {
    assert.equal(formatDuration(H), '1 h');
    assert.equal(formatDuration(H + 59 * S), '1 h');
    assert.equal(formatDuration(5 * H + 12 * M + 59 * S), '5 h 12 m');
    assert.equal(formatDuration(D - 1), '23 h 59 m');
  });

  test('days drop minutes and show hours unless they are zero', () => {
    assert.equal(formatDuration(D), '1 d');
    assert.equal(formatDuration(2 * D + 3 * H + 59 * M), '2 d 3 h');
    assert.equal(formatDuration(2 * D + 30 * M), '2 d');
    assert.equal(formatDuration(10 * D), '10 d');
  });

  test('positive infinity reads as "∞"', () => {
    assert.equal(formatDuration(Number.POSITIVE_INFINITY), '∞');
  });
});
