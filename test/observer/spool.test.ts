// The on-disk spool: order, restart at the acknowledged cursor, a real crash in the middle of appends
// (SIGKILL), a torn last line, a full spool, the single-writer lock and a corrupt line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import {
  Spool,
  SpoolFullError,
  SpoolLockedError,
  completeLines,
  normalizeCursor,
  parseCursor,
  parseSegmentName,
  pendingBytes,
  segmentName,
} from '../../src/observer/spool.js';
import { REPO_ROOT } from '../support/heal-stack.js';

interface Rec {
  n: number;
  pad?: string;
}

let root: string;
let dirCount = 0;
const warnings: string[] = [];
const log = {
  warn: (_o: object, msg: string) => void warnings.push(msg),
  error: (_o: object, msg: string) => void warnings.push(msg),
};

async function freshDir(): Promise<string> {
  dirCount++;
  return join(root, `spool-${dirCount}`);
}

async function drainAll(spool: Spool<Rec>): Promise<number[]> {
  const seen: number[] = [];
  for (;;) {
    const entry = await spool.peek();
    if (!entry) return seen;
    seen.push(entry.value.n);
    await spool.ack(entry);
  }
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'klr-spool-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('pure parts', () => {
  test('segment names sort in order and parse back; other files are not segments', () => {
    assert.equal(segmentName(42), 'segment-000000000042.jsonl');
    assert.equal(parseSegmentName(segmentName(42)), 42);
    assert.equal(parseSegmentName('cursor.json'), null);
    assert.equal(parseSegmentName('segment-000000000000.jsonl'), null);
    const names = [segmentName(10), segmentName(9), segmentName(100)].sort();
    assert.deepEqual(names.map(parseSegmentName), [9, 10, 100]);
    assert.throws(() => segmentName(0), RangeError);
  });

  test('complete lines and the torn tail', () => {
    const buf = Buffer.from('{"n":1}\n{"n":2}\n{"n":');
    const { lines, tornBytes } = completeLines(buf);
    assert.deepEqual(lines, [
      { offset: 0, length: 7 },
      { offset: 8, length: 7 },
    ]);
    assert.equal(tornBytes, 5);
    assert.deepEqual(completeLines(buf, 8).lines, [{ offset: 8, length: 7 }]);
    assert.equal(completeLines(Buffer.from('a\n')).tornBytes, 0);
  });

  test('cursor math: a finished segment is left behind, bytes pending count from the cursor', () => {
    const sizes = new Map([
      [1, 100],
      [2, 50],
      [3, 0],
    ]);
    assert.deepEqual(normalizeCursor({ segment: 1, offset: 100 }, sizes, 3), { segment: 2, offset: 0 });
    assert.deepEqual(normalizeCursor({ segment: 2, offset: 50 }, sizes, 3), { segment: 3, offset: 0 });
    assert.deepEqual(normalizeCursor({ segment: 1, offset: 40 }, sizes, 3), { segment: 1, offset: 40 });
    // The segment still being written is never left: appends will follow.
    assert.deepEqual(normalizeCursor({ segment: 3, offset: 0 }, sizes, 3), { segment: 3, offset: 0 });
    assert.equal(pendingBytes({ segment: 1, offset: 40 }, sizes), 110);
    assert.equal(pendingBytes({ segment: 2, offset: 50 }, sizes), 0);
    assert.deepEqual(parseCursor('{"segment":2,"offset":7}'), { segment: 2, offset: 7 });
    assert.equal(parseCursor('{"segment":0,"offset":7}'), null);
    assert.equal(parseCursor('{"segment":2,"off'), null);
  });
});

test('order is kept across segments; acknowledged segments are deleted', async () => {
  const dir = await freshDir();
  const spool = await Spool.open<Rec>({ dir, maxBytes: 1 << 20, segmentBytes: 64, log });
  for (let n = 1; n <= 20; n++) await spool.append({ n });
  assert.equal(spool.pendingCount, 20);
  const segmentsBefore = (await readdir(dir)).filter((f) => parseSegmentName(f) !== null);
  assert.ok(segmentsBefore.length >= 3, `expected several segments, got ${segmentsBefore.join(', ')}`);
  assert.deepEqual(
    await drainAll(spool),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  assert.equal(spool.pendingCount, 0);
  assert.equal(spool.pendingBytes, 0);
  const segmentsAfter = (await readdir(dir)).filter((f) => parseSegmentName(f) !== null);
  assert.equal(
    segmentsAfter.length,
    1,
    `only the segment being written remains: ${segmentsAfter.join(', ')}`,
  );
  await spool.close();
});

test('a restart resumes at the acknowledged cursor', async () => {
  const dir = await freshDir();
  let spool = await Spool.open<Rec>({ dir, maxBytes: 1 << 20, segmentBytes: 40, log });
  for (let n = 1; n <= 6; n++) await spool.append({ n });
  for (let i = 0; i < 4; i++) {
    const e = await spool.peek();
    assert.ok(e);
    await spool.ack(e);
  }
  await spool.close();
  spool = await Spool.open<Rec>({ dir, maxBytes: 1 << 20, segmentBytes: 40, log });
  assert.equal(spool.pendingCount, 2);
  await spool.append({ n: 7 });
  assert.deepEqual(await drainAll(spool), [5, 6, 7]);
  await spool.close();
  spool = await Spool.open<Rec>({ dir, maxBytes: 1 << 20, log });
  assert.equal(spool.pendingCount, 0, 'nothing is handed out twice after a clean restart');
  await spool.close();
});

test('a torn last line (crash inside an append) is dropped with a warning; earlier records are kept', async () => {
  const dir = await freshDir();
  let spool = await Spool.open<Rec>({ dir, maxBytes: 1 << 20, log });
  await spool.append({ n: 1 });
  await spool.append({ n: 2 });
  await spool.close();
  const segment = join(dir, segmentName(1));
  await appendFile(segment, '{"n":3,"pad":"half a rec'); // what a crash mid-write leaves
  warnings.length = 0;
  spool = await Spool.open<Rec>({ dir, maxBytes: 1 << 20, log });
  assert.ok(
    warnings.some((w) => /torn last line/.test(w)),
    `warned: ${warnings.join(' | ')}`,
  );
  assert.equal(spool.pendingCount, 2);
  await spool.append({ n: 4 }); // must not be glued onto the torn bytes
  assert.deepEqual(await drainAll(spool), [1, 2, 4]);
  assert.equal((await readFile(segment, 'utf8')).split('\n').filter(Boolean).length, 3);
  await spool.close();
});

test('SIGKILL in the middle of appends: every append that resolved survives, in order, once', async () => {
  const dir = await freshDir();
  const child = execa(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'test', 'support', 'spool-writer.ts'), dir, '4096'],
    { cwd: REPO_ROOT, stdout: 'pipe', stderr: 'pipe', reject: false },
  );
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.split('\n').length > 300) resolve();
    });
    void child.then((r) => reject(new Error(`writer exited early: ${String(r.stderr)}`)));
  });
  child.kill('SIGKILL');
  await child;
  const acknowledged = out
    .split('\n')
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
  const lastAcked = acknowledged[acknowledged.length - 1] ?? 0;
  const spool = await Spool.open<Rec>({ dir, maxBytes: 1024 ** 3, log });
  const recovered = await drainAll(spool);
  await spool.close();
  // Everything acknowledged is there; at most the one append in flight at the kill may also be there.
  assert.ok(
    recovered.length >= lastAcked && recovered.length <= lastAcked + 1,
    `${recovered.length} vs ${lastAcked}`,
  );
  assert.deepEqual(
    recovered,
    Array.from({ length: recovered.length }, (_, i) => i + 1),
  );
});

test('a full spool refuses the record with a clear error and counts it; room returns after an ack', async () => {
  const dir = await freshDir();
  const spool = await Spool.open<Rec>({ dir, maxBytes: 40, log });
  await spool.append({ n: 1 }); // 8 bytes
  await spool.append({ n: 2 });
  await spool.append({ n: 3 });
  await spool.append({ n: 4 });
  await spool.append({ n: 5 }); // 40 bytes: exactly full
  await assert.rejects(spool.append({ n: 6 }), (err: unknown) => {
    assert.ok(err instanceof SpoolFullError);
    assert.match(err.message, /is full: 40 of 40 bytes .* NOT accepted.*KLR_OBSERVER_SPOOL_MAX_MB/);
    return true;
  });
  assert.equal(spool.fullCount, 1);
  assert.equal(spool.pendingCount, 5, 'the refused record was not stored');
  const first = await spool.peek();
  assert.ok(first);
  await spool.ack(first);
  await spool.append({ n: 6 });
  assert.deepEqual(await drainAll(spool), [2, 3, 4, 5, 6]);
  await spool.close();
});

test('one writer per directory; a lock left by a dead process is taken over', async () => {
  const dir = await freshDir();
  const spool = await Spool.open<Rec>({ dir, maxBytes: 1 << 20, log });
  await assert.rejects(Spool.open<Rec>({ dir, maxBytes: 1 << 20, log }), SpoolLockedError);
  await spool.close();
  const dead = await execa(process.execPath, ['-e', 'console.log(process.pid)']);
  await writeFile(join(dir, 'spool.lock'), `${dead.stdout.trim()}\n`);
  const again = await Spool.open<Rec>({ dir, maxBytes: 1 << 20, log });
  await again.close();
});

test('a crash between writing the cursor and deleting a finished segment: the segment goes on reopen', async () => {
  const dir = await freshDir();
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, segmentName(1)), '{"n":1}\n');
  await writeFile(join(dir, segmentName(2)), '{"n":2}\n');
  await writeFile(join(dir, 'cursor.json'), '{"segment":2,"offset":0}\n');
  const spool = await Spool.open<Rec>({ dir, maxBytes: 1 << 20, log });
  assert.deepEqual(await drainAll(spool), [2]);
  await spool.close();
  assert.ok(!(await readdir(dir)).includes(segmentName(1)));
});

test('a line that is not JSON is handed to onCorrupt and skipped, not lost silently', async () => {
  const dir = await freshDir();
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, segmentName(1)), '{"n":1}\n\u0000\u0000garbage\n{"n":3}\n');
  const corrupt: string[] = [];
  const spool = await Spool.open<Rec>({
    dir,
    maxBytes: 1 << 20,
    log,
    onCorrupt: async (raw) => void corrupt.push(raw),
  });
  assert.deepEqual(await drainAll(spool), [1, 3]);
  assert.deepEqual(corrupt, ['\u0000\u0000garbage']);
  await spool.close();
});
