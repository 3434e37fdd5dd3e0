import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytesToMib, parseSizeMib, toMib } from '../../src/observer/sizes.js';

test('sizes as PyTorch, vLLM and NCCL print them become MiB', () => {
  assert.equal(parseSizeMib('20.00 MiB'), 20);
  assert.equal(parseSizeMib('1.5 GiB'), 1536);
  assert.equal(parseSizeMib('79.19GiB'), 81090.56);
  assert.equal(parseSizeMib('512 KiB'), 0.5);
  assert.equal(parseSizeMib('1048576 bytes'), 1);
  assert.equal(parseSizeMib('2 TiB'), 2 * 1024 * 1024);
  assert.equal(parseSizeMib('3.50 MB'), 3.5, 'MB is read as MiB, as PyTorch means it');
  assert.equal(bytesToMib(20 * 1024 * 1024), 20);
  assert.equal(bytesToMib(1536), 0);
  assert.equal(toMib(1, 'gib'), 1024);
});

test('what is not a size is null', () => {
  for (const bad of ['', 'GiB', '12', '1.5 parsecs', '-3 MiB', 'twelve MiB', '1.5 GiB free']) {
    assert.equal(parseSizeMib(bad), null, bad);
  }
  assert.equal(toMib(-1, 'MiB'), null);
  assert.equal(toMib(Number.NaN, 'MiB'), null);
});
