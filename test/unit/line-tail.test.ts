// A server's output kept for its error message: the first lines (a Go panic's cause) and the last ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineTail } from '../../src/servers/install.js';

test('a panic longer than the tail keeps its first line, the gap and the last lines', () => {
  const tail = new LineTail(3, 2);
  tail.push('panic: listen tcp 127.0.0.1:41234: bind: address already in use');
  tail.push('goroutine 1 [running]:');
  for (let i = 1; i <= 100; i++) tail.push(`frame ${i}`);
  assert.equal(
    tail.toString(),
    [
      'panic: listen tcp 127.0.0.1:41234: bind: address already in use',
      'goroutine 1 [running]:',
      '… (97 lines) …',
      'frame 98',
      'frame 99',
      'frame 100',
    ].join('\n'),
  );
});

test('short output is kept whole, with no gap', () => {
  const tail = new LineTail(3, 2);
  for (const line of ['a', 'b', 'c', 'd']) tail.push(line);
  assert.equal(tail.toString(), 'a\nb\nc\nd');
});
