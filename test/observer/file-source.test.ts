// The file follower under rotation, truncation, late creation and restarts, through observe() with a
// sink that records what it was handed: nothing lost, nothing doubled, the same ids after a restart.
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, statSync, truncateSync } from 'node:fs';
import { appendFile, mkdtemp, readdir, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSource } from '../../src/observer/sources/file-source.js';
import { observe, type ObserveSummary } from '../../src/observer/pipeline.js';
import type { SymptomSink } from '../../src/observer/types.js';
import type { SymptomInput } from '../../src/domain/symptom.js';

type Sym = SymptomInput & { id: string };
let dir: string;
let log: string;
let stateDir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-file-source-'));
  log = join(dir, 'vllm.log');
  stateDir = join(dir, 'state');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

let minute = 0;
/** A distinct OOM each call (a new minute of log time, so none collapse into another). */
function oom(): string {
  minute += 1;
  const t = `0${Math.floor(minute / 60) % 10}:${String(minute % 60).padStart(2, '0')}:00`;
  return `(EngineCore_0 pid=7) ERROR 11-28 ${t} [core.py:700] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ${minute}.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 3.50 MiB is free.\n`;
}
const info = (n: number) =>
  Array.from(
    { length: n },
    (_, i) => `(APIServer pid=6) INFO 11-28 01:00:00 [loggers.py:123] Engine 000: line ${i}\n`,
  ).join('');

class RecordingSink implements SymptomSink {
  readonly got: Sym[] = [];
  async deliver(symptom: Sym): Promise<void> {
    this.got.push(symptom);
  }
  async close(): Promise<void> {}
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

type StartOver = { reason: string; whileStopped: boolean };

/** observe() following the log in the background. */
function follow(sink: RecordingSink, opts: { fromStart?: boolean; pollMs?: number } = {}) {
  const controller = new AbortController();
  let markStarted: () => void = () => {};
  const started = new Promise<void>((r) => (markStarted = r));
  const startedOver: StartOver[] = [];
  const source = new FileSource({
    path: log,
    stateDir,
    pollMs: 10,
    ...opts,
    onStarted: () => markStarted(),
    onStartOver: ({ reason, whileStopped }) => startedOver.push({ reason, whileStopped }),
  });
  const done: Promise<ObserveSummary> = observe({
    source,
    host: 'gpu-1',
    sink,
    signal: controller.signal,
    commitEveryMs: 0,
  });
  return { started, startedOver, stop: async () => (controller.abort(), done) };
}

test('starts at the end by default, then sees what is appended; --from-start reads what was there', async () => {
  await writeFile(log, info(3) + oom() + info(2));
  const sink = new RecordingSink();
  const f = follow(sink);
  await f.started;
  await appendFile(log, info(1) + oom());
  await until('the appended OOM', () => sink.got.length === 1);
  await f.stop();
  assert.match(sink.got[0]?.details?.text ?? '', /Tried to allocate 2\.00 MiB/);

  await rm(stateDir, { recursive: true });
  const sink2 = new RecordingSink();
  const g = follow(sink2, { fromStart: true });
  await until('both OOMs', () => sink2.got.length === 2);
  await g.stop();
  assert.deepEqual(
    sink2.got.map((s) => s.details?.allocMb),
    [1, 2],
  );
});

test('rotation by rename: the old file is drained, the new one read from its start, ids differ', async () => {
  await writeFile(log, '');
  const sink = new RecordingSink();
  const f = follow(sink);
  await f.started;
  await appendFile(log, oom());
  await until('first OOM', () => sink.got.length === 1);
  // logrotate: a last line lands in the old file just before the rename, then a new file appears.
  await appendFile(log, oom());
  await rename(log, `${log}.1`);
  await writeFile(log, oom());
  await until('three OOMs', () => sink.got.length === 3);
  await appendFile(log, info(2) + oom());
  await until('four OOMs', () => sink.got.length === 4);
  const summary = await f.stop();
  assert.deepEqual(
    sink.got.map((s) => s.details?.allocMb),
    [1, 2, 3, 4].map((n) => n + minuteBase(sink)),
  );
  assert.equal(
    new Set(sink.got.map((s) => s.id)).size,
    4,
    'the new file offset 0 is not the old file offset 0',
  );
  assert.equal(summary.incidents, 4);
});

/** Allocation sizes count up across tests (one minute each): the first one this test saw, minus one. */
function minuteBase(sink: RecordingSink): number {
  return (sink.got[0]?.details?.allocMb ?? 1) - 1;
}

test('copytruncate: the file is emptied in place and written again; new lines get new ids', async () => {
  await writeFile(log, '');
  const sink = new RecordingSink();
  const f = follow(sink);
  await f.started;
  await appendFile(log, info(5) + oom());
  await until('first OOM', () => sink.got.length === 1);
  await truncate(log, 0);
  // The new content is shorter than what was read: the shrink is seen whenever the follower polls.
  await new Promise((r) => setTimeout(r, 60));
  await appendFile(log, oom());
  await until('second OOM', () => sink.got.length === 2);
  await f.stop();
  assert.notEqual(sink.got[0]?.id, sink.got[1]?.id);
  assert.equal(sink.got[1]?.id.endsWith('/0'), true, 'read from offset 0 again');
});

test('copytruncate and a burst past the old offset before the next poll: the new file is read from its start', async () => {
  await writeFile(log, '');
  const sink = new RecordingSink();
  // A slow poll, and the truncation and the burst in one synchronous step: the follower cannot see the
  // file empty in between, only a file of the same inode that is now longer than what it had read.
  const f = follow(sink, { pollMs: 300 });
  await f.started;
  await appendFile(log, info(5) + oom());
  await until('first OOM', () => sink.got.length === 1);
  const oldOffset = statSync(log).size;
  const burst = oom() + info(10) + oom() + info(3) + oom();
  assert.ok(burst.length > oldOffset, 'the new content outgrows the old offset');
  truncateSync(log, 0);
  appendFileSync(log, burst);
  await until('the three OOMs of the new content', () => sink.got.length >= 4);
  await new Promise((r) => setTimeout(r, 700)); // two more polls: nothing is read twice
  await f.stop();
  const base = minuteBase(sink);
  assert.deepEqual(
    sink.got.map((s) => s.details?.allocMb),
    [1, 2, 3, 4].map((n) => n + base),
    'every incident of the new content, once, in order',
  );
  assert.equal(new Set(sink.got.map((s) => s.id)).size, 4);
  assert.equal(sink.got[1]?.id.endsWith('/0'), true, 'read from offset 0 again');
  assert.deepEqual(f.startedOver, [{ reason: 'truncated', whileStopped: false }]);
});

test('truncated and written past the saved offset while stopped: the restart reads the new content from its start', async () => {
  await writeFile(log, '');
  const sink = new RecordingSink();
  const first = follow(sink);
  await first.started;
  await appendFile(log, info(3) + oom());
  await until('first OOM', () => sink.got.length === 1);
  await first.stop();
  const savedOffset = statSync(log).size;
  // While the observer is down: copytruncate, and the service writes more than there was.
  truncateSync(log, 0);
  appendFileSync(log, oom() + info(8) + oom());
  assert.ok(statSync(log).size > savedOffset);
  const second = follow(sink);
  await until('both OOMs of the new content', () => sink.got.length === 3);
  await second.stop();
  assert.deepEqual(second.startedOver, [{ reason: 'truncated', whileStopped: true }]);
  assert.equal(new Set(sink.got.map((s) => s.id)).size, 3);
  assert.equal(sink.got[1]?.id.endsWith('/0'), true);

  // A third run from the position the second one saved reads nothing again (same bytes, same place).
  const third = follow(sink);
  await third.started;
  await new Promise((r) => setTimeout(r, 100));
  await third.stop();
  assert.equal(sink.got.length, 3);
  assert.deepEqual(third.startedOver, []);
});

test('a file that does not exist yet is waited for and read from its start', async () => {
  const sink = new RecordingSink();
  const f = follow(sink);
  await f.started;
  await writeFile(log, info(2) + oom());
  await until('the OOM in the late file', () => sink.got.length === 1);
  await f.stop();
});

test('restart from the saved position: nothing lost, nothing doubled; a re-read gives the same ids', async () => {
  await writeFile(log, '');
  const sink = new RecordingSink();
  const first = follow(sink);
  await first.started;
  await appendFile(log, oom() + info(3) + oom());
  await until('two OOMs', () => sink.got.length === 2);
  await first.stop();
  // While the observer is down, more is written — including a partial last line.
  const partial = oom();
  await appendFile(log, info(2) + oom() + partial.slice(0, 40));
  const second = follow(sink);
  await until('the OOM written while down', () => sink.got.length === 3);
  await appendFile(log, partial.slice(40));
  await until('the completed partial line', () => sink.got.length === 4);
  await second.stop();
  assert.equal(new Set(sink.got.map((s) => s.id)).size, 4, 'no incident delivered twice');
  assert.deepEqual(await readdir(stateDir), [
    (await readdir(stateDir)).find((n) => n.startsWith('position-')) as string,
  ]);

  // A crash before the position was saved means a re-read: from-start with no state gives the same ids.
  await rm(stateDir, { recursive: true });
  const again = new RecordingSink();
  const third = follow(again, { fromStart: true });
  await until('the re-read', () => again.got.length === 4);
  await third.stop();
  assert.deepEqual(
    again.got.map((s) => s.id),
    sink.got.map((s) => s.id),
  );
});

test('the position saved is never past a line the sink has not accepted', async () => {
  await writeFile(log, '');
  let fail = true;
  const sink: SymptomSink = {
    deliver: async () => {
      if (fail) throw new Error('spool full');
    },
    close: async () => {},
  };
  const source = new FileSource({ path: log, stateDir, pollMs: 10, fromStart: true, once: true });
  await appendFile(log, info(2) + oom() + info(2));
  await assert.rejects(observe({ source, host: 'gpu-1', sink, commitEveryMs: 0 }), /spool full/);
  // The next run reads the OOM again (a crash re-reads rather than skips).
  fail = false;
  const got: string[] = [];
  const summary = await observe({
    source: new FileSource({ path: log, stateDir, pollMs: 10, once: true }),
    host: 'gpu-1',
    sink,
    onIncident: (_i, s) => got.push(s.id),
  });
  assert.equal(summary.incidents, 1);
  assert.equal(got.length, 1);
  // And once accepted, it is not read a third time.
  const summary2 = await observe({
    source: new FileSource({ path: log, stateDir, once: true }),
    host: 'gpu-1',
    sink,
  });
  assert.equal(summary2.incidents, 0);
  assert.equal(summary2.lines, 0);
});

test('long lines are capped, a last line without newline is read in --once mode', async () => {
  await writeFile(log, `${'x'.repeat(200_000)}\n${oom().trimEnd()}`);
  const texts: string[] = [];
  const truncated: boolean[] = [];
  const source = new FileSource({ path: log, fromStart: true, once: true });
  for await (const line of source.lines()) {
    texts.push(line.text);
    truncated.push(line.truncated === true);
  }
  assert.equal(texts.length, 2);
  assert.equal(texts[0]?.length, 64 * 1024);
  assert.match(texts[1] ?? '', /CUDA out of memory/);
  assert.deepEqual(truncated, [true, false], 'the capped line says so (the observer counts it)');
});

test('a line is truncated only when something of it was dropped: the cap itself, CRLF, multi-byte, huge', async () => {
  const MAX = 64 * 1024;
  const cases: [string, string, boolean][] = [
    ['exactly the cap', 'a'.repeat(MAX), false],
    ['the cap and CRLF', `${'a'.repeat(MAX)}\r`, false],
    ['one over', 'a'.repeat(MAX + 1), true],
    ['the cap in 3-byte characters', '€'.repeat(MAX), false],
    ['one 3-byte character over', '€'.repeat(MAX + 1), true],
    ['far over the bytes kept', 'b'.repeat(MAX * 5), true],
  ];
  await writeFile(log, cases.map(([, text]) => `${text}\n`).join(''));
  const got: boolean[] = [];
  for await (const line of new FileSource({ path: log, fromStart: true, once: true }).lines())
    got.push(line.truncated === true);
  assert.deepEqual(
    got.map((t, i) => `${cases[i]?.[0]}: ${t}`),
    cases.map(([what, , t]) => `${what}: ${t}`),
  );
});
