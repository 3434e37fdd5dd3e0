// `healctl observe` as an operator runs it: a real process on real files and stdin, --dry-run (no Temporal).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { HEALCTL_SCRIPT } from '../support/programs.js';

let dir: string;
const healctl = (args: string[], input?: string) =>
  execa(process.execPath, [HEALCTL_SCRIPT, ...args], {
    reject: false,
    ...(input !== undefined ? { input } : { stdin: 'ignore' }),
    // No Temporal anywhere: a dry run must not try to reach one.
    env: { TEMPORAL_ADDRESS: '127.0.0.1:1', KLR_HOST: 'gpu-7', KLR_DATA_DIR: '' },
    extendEnv: true,
    timeout: 60_000,
  });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-healctl-observe-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('--file --once --dry-run --json: one JSON object per incident, sizes in MiB, a summary on stderr', async () => {
  const log = join(dir, 'vllm.log');
  const text =
    (await readFile('test/fixtures/logs/sim-die.txt', 'utf8')) +
    (await readFile('test/fixtures/logs/cuda-error-cublas.txt', 'utf8'));
  await writeFile(log, text);
  const r = await healctl(['observe', '--file', log, '--once', '--dry-run', '--json', '--host', 'gpu-7']);
  assert.equal(r.exitCode, 0, r.stderr);
  const objects = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    objects.map((o) => [o.kind, o.family, o.line]),
    [
      ['vllm_oom', 'torch_oom', 37],
      ['vllm_oom', 'cuda_error_oom', 85 + 6],
      ['vllm_oom', 'cublas_alloc', 85 + 13],
    ],
  );
  assert.deepEqual(objects[0]?.sizesMib, {
    alloc: 20,
    total: 81090.56,
    free: 3.5,
    used: 79544.32,
    deficit: 16.5,
  });
  assert.match(String(objects[0]?.id), /^obs\/gpu-7\/[0-9a-f]{16}\/\d+$/);
  assert.match(String(objects[0]?.text), /CUDA out of memory\. Tried to allocate 20\.00 MiB/);
  assert.equal(typeof objects[0]?.at, 'string');
  assert.match(
    r.stderr,
    /99 lines.*3 incidents \(torch_oom 1, cuda_error_oom 1, cublas_alloc 1\), dry run: nothing sent/,
  );

  // The same file again gives the same ids (positions, not run order).
  const viaOutput = await healctl([
    'observe',
    '--file',
    log,
    '--once',
    '--dry-run',
    '-o',
    'json',
    '--host',
    'gpu-7',
  ]);
  assert.equal(viaOutput.stdout, r.stdout, '-o json is --json');
  const again = await healctl(['observe', '--file', log, '--once', '--dry-run', '--json', '--host', 'gpu-7']);
  assert.deepEqual(
    again.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { id: string }).id),
    objects.map((o) => o.id),
  );
});

test('--json | head: the reader going away ends observe quietly with exit 0 (no EPIPE crash)', async () => {
  const log = join(dir, 'many.log');
  const lines: string[] = [];
  for (let i = 0; i < 3000; i++)
    lines.push(
      `ERROR 12-02 10:00:00 [engine.py:1] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ${i + 1}.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 3.12 MiB is free.`,
      'INFO 12-02 10:00:00 [engine.py:2] another line',
    );
  await writeFile(log, lines.join('\n') + '\n');
  // A shell pipeline as an operator types it; PIPESTATUS gives healctl's own exit status.
  const r = await execa(
    'bash',
    [
      '-c',
      `'${process.execPath}' '${HEALCTL_SCRIPT}' observe --file '${log}' --once --dry-run --json | head -c 200 >/dev/null; echo "healctl exit \${PIPESTATUS[0]}" >&2`,
    ],
    {
      reject: false,
      env: { TEMPORAL_ADDRESS: '127.0.0.1:1', KLR_HOST: 'gpu-7', KLR_DATA_DIR: '' },
      extendEnv: true,
    },
  );
  assert.match(r.stderr, /healctl exit 0$/);
  assert.doesNotMatch(r.stderr, /EPIPE|Error:/);
});

test('human output: one readable line per incident', async () => {
  const r = await healctl(['observe', '--file', 'test/fixtures/logs/sim-kv.txt', '--once', '--dry-run']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(
    r.stdout,
    /^line 19 {2}vllm_oom\/kv_cache_too_small {2}alloc 16,384 MiB {2}free 9,728 MiB {2}deficit 6,656 MiB {2}est\. max len 77808\n/,
  );
});

test('- reads stdin until it closes', async () => {
  const input = await readFile('test/fixtures/logs/xid.journal.txt', 'utf8');
  const r = await healctl(['observe', '-', '--dry-run', '--json'], input);
  assert.equal(r.exitCode, 0, r.stderr);
  const objects = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; xid: number });
  assert.deepEqual(
    objects.map((o) => [o.kind, o.xid]),
    [
      ['gpu_xid', 48],
      ['gpu_xid', 31],
    ],
  );
  assert.match(r.stderr, /stdin: 3 lines/);
});

test('--command runs a program without a shell (--once stops when it exits)', async () => {
  const r = await healctl([
    'observe',
    '--command',
    'cat test/fixtures/logs/nccl-oom.journal.txt',
    '--once',
    '--dry-run',
    '--json',
  ]);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout.trim()) as { family: string }).family, 'nccl_alloc');
});

test('bad arguments exit 2 with a clear message', async () => {
  const cases: [string[], RegExp][] = [
    [
      ['observe', '--dry-run'],
      /expected exactly one source: --file PATH, --command "\.\.\." or - \(stdin\); got none/,
    ],
    [['observe', '--file', 'a', '--command', 'b', '--dry-run'], /expected exactly one source.*got several/],
    [['observe', 'oops', '--dry-run'], /unexpected argument "oops"; expected "-" for stdin/],
    [
      ['observe', '--command', 'journalctl -f | grep oom', '--dry-run'],
      /shell operator "\|", but no shell runs it/,
    ],
    [['observe', '--command', 'tail "unclosed', '--dry-run'], /cannot split command/],
    [['observe', '-', '--from-start', '--dry-run'], /--from-start applies to --file only/],
    [
      ['observe', '--file', 'x', '--collapse-window', 'soon', '--dry-run'],
      /--collapse-window "soon" is not valid; expected whole milliseconds/,
    ],
  ];
  for (const [args, message] of cases) {
    const r = await healctl(args, '');
    assert.equal(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
});

test('a missing file with --once is a failure (exit 1) naming the file', async () => {
  const missing = join(dir, 'nope.log');
  const r = await healctl(['observe', '--file', missing, '--once', '--dry-run']);
  assert.equal(r.exitCode, 1);
  assert.equal(r.stderr.trim(), `healctl observe: ${missing}: no such file`);
});

test('--help shows examples', async () => {
  const r = await healctl(['observe', '--help']);
  assert.equal(r.exitCode, 0);
  assert.match(
    r.stdout,
    /Examples:\n {2}healctl observe --file \/var\/log\/vllm\.log --once --dry-run --json/,
  );
});
