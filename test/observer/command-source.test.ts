// Following a real subprocess's output, and splitting --command without a shell.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { CommandSource } from '../../src/observer/sources/command-source.js';
import { splitLines } from '../../src/observer/sources/stream-source.js';
import { CommandLineError, parseCommandLine } from '../../src/observer/sources/command-line.js';
import { observe } from '../../src/observer/pipeline.js';
import type { SymptomInput } from '../../src/domain/symptom.js';

const OOM =
  'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 3.50 MiB is free.';
const script = (body: string) => [process.execPath, '-e', body];

test('a command: stdout and stderr lines, in order, until it exits (--once)', async () => {
  const argv = script(
    `console.log('INFO 11-28 03:00:00 [x.py:1] hello'); console.error(${JSON.stringify(`ERROR 11-28 03:04:05 [core.py:700] ${OOM}`)}); console.log('tail without newline'); process.stdout.write('last')`,
  );
  const texts: string[] = [];
  for await (const line of new CommandSource({ argv, once: true }).lines()) texts.push(line.text);
  assert.equal(texts.length, 4);
  assert.ok(texts.includes('last'));
  assert.ok(
    texts.some((t) => t.includes('CUDA out of memory')),
    'stderr is read too (docker logs replays stderr there)',
  );

  const ids: string[] = [];
  const summary = await observe({
    source: new CommandSource({ argv, once: true }),
    host: 'gpu-1',
    onIncident: (_i, s: SymptomInput & { id: string }) => ids.push(s.id),
  });
  assert.equal(summary.incidents, 1);
  // Stream ids come from content: the same output replayed (journalctl -f prints its tail again) is the same id.
  const again: string[] = [];
  await observe({
    source: new CommandSource({ argv, once: true }),
    host: 'gpu-1',
    onIncident: (_i, s) => again.push(s.id),
  });
  assert.deepEqual(again, ids);
  assert.match(ids[0] ?? '', /^obs\/gpu-1\/[0-9a-f]{16}\/c[0-9a-f]{20}$/);
});

test('a command that exits is started again (with backoff) until stopped', async () => {
  const argv = script(`console.log(${JSON.stringify(OOM)})`);
  const exits: (number | undefined)[] = [];
  const controller = new AbortController();
  const source = new CommandSource({
    argv,
    backoff: { initialMs: 10, maxMs: 20 },
    onExit: ({ exitCode }) => exits.push(exitCode),
  });
  let lines = 0;
  for await (const line of source.lines(controller.signal)) {
    assert.equal(line.text, OOM);
    if (++lines === 3) controller.abort();
  }
  assert.equal(lines, 3);
  assert.ok(exits.length >= 2);
  assert.deepEqual(new Set(exits), new Set([0]));
});

test('a long-running command is stopped by the signal', async () => {
  const controller = new AbortController();
  const source = new CommandSource({
    argv: script(`setInterval(() => console.log('INFO tick'), 5)`),
  });
  let n = 0;
  for await (const _ of source.lines(controller.signal)) if (++n === 5) controller.abort();
  assert.equal(n, 5);
});

test('a program that cannot be started fails clearly in --once mode', async () => {
  const source = new CommandSource({ argv: ['/nonexistent/journalctl', '-f'], once: true });
  await assert.rejects(async () => {
    for await (const _ of source.lines()) void _;
  }, /nonexistent\/journalctl.*ENOENT|ENOENT.*nonexistent/);
});

test('--command is split into words without a shell; quotes and escapes; operators refused', () => {
  assert.deepEqual(parseCommandLine('journalctl -f -u vllm -o cat'), [
    'journalctl',
    '-f',
    '-u',
    'vllm',
    '-o',
    'cat',
  ]);
  assert.deepEqual(parseCommandLine(`docker logs -f "my vllm" --since '10 min ago'`), [
    'docker',
    'logs',
    '-f',
    'my vllm',
    '--since',
    '10 min ago',
  ]);
  assert.deepEqual(parseCommandLine('kubectl logs -f a\\ b'), ['kubectl', 'logs', '-f', 'a b']);
  assert.deepEqual(
    parseCommandLine(`grep -E "a|b" f`),
    ['grep', '-E', 'a|b', 'f'],
    'a quoted | is an argument',
  );
  assert.deepEqual(parseCommandLine('["tail", "-F", "/var/log/a b.log"]'), [
    'tail',
    '-F',
    '/var/log/a b.log',
  ]);
  for (const bad of [
    'journalctl -f | grep oom',
    'a; rm -rf /',
    'a && b',
    'tail -F $LOG',
    'echo `id`',
    'a > out',
    'a &',
  ]) {
    assert.throws(
      () => parseCommandLine(bad),
      (e: unknown) => e instanceof CommandLineError && /shell operator/.test(e.message),
      bad,
    );
  }
  for (const bad of ['', '   ', 'tail "unclosed']) {
    assert.throws(() => parseCommandLine(bad), /cannot split command/, bad);
  }
});

test('stream lines: capped at 65536 characters, and truncated only when something was dropped', async () => {
  const MAX = 64 * 1024;
  const text = [
    'a'.repeat(MAX),
    `${'b'.repeat(MAX)}\r`,
    'c'.repeat(MAX + 1),
    'd'.repeat(MAX * 3),
    `${'e'.repeat(MAX + 1)}\r`,
    'short',
  ].join('\n');
  // In small chunks, so that long lines arrive in pieces and partial lines are carried over.
  const chunks: Buffer[] = [];
  const bytes = Buffer.from(`${text}\nlast without newline`);
  for (let at = 0; at < bytes.length; at += 7001) chunks.push(bytes.subarray(at, at + 7001));
  const got: string[] = [];
  for await (const line of splitLines(Readable.from(chunks)))
    got.push(`${line.text.slice(0, 1)} ${line.text.length} ${line.truncated}`);
  assert.deepEqual(got, [
    `a ${MAX} false`,
    `b ${MAX} false`,
    `c ${MAX} true`,
    `d ${MAX} true`,
    `e ${MAX} true`,
    's 5 false',
    'l 20 false',
  ]);
});
