// A durable on-disk FIFO for symptoms that could not be delivered yet. One directory holds append-only
// JSON Lines segment files and an acknowledged-cursor file. Every append is fsynced before it resolves
// (so a caller told "accepted" can rely on it); the cursor is replaced atomically (temp, fsync, rename,
// fsync of the directory); a segment is deleted once the cursor has moved past it. A crash at any point
// leaves either a complete line or a torn last line that no caller was ever told about: the torn tail
// is cut off with a warning on the next open. Redelivering after a crash between a delivery and its
// acknowledgement is harmless, because symptoms carry idempotency ids.
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isProcessAlive } from '../system/process-alive.js';
import { fsyncDir, writeFileDurably } from '../system/durable-file.js';

// ---- pure parts ------------------------------------------------------------------------------------

/** Where the next unacknowledged record starts: a segment number and a byte offset inside it. */
export interface SpoolCursor {
  segment: number;
  offset: number;
}

const SEGMENT_RE = /^segment-(\d{12})\.jsonl$/;
export const CURSOR_FILE = 'cursor.json';
export const LOCK_FILE = 'spool.lock';

/** `segment-000000000042.jsonl`: zero-padded so a plain listing sorts in order. */
export function segmentName(segment: number): string {
  if (!Number.isSafeInteger(segment) || segment < 1) throw new RangeError(`bad segment number ${segment}`);
  return `segment-${String(segment).padStart(12, '0')}.jsonl`;
}

/** The segment number of a file name, or null for any other file. */
export function parseSegmentName(name: string): number | null {
  const m = SEGMENT_RE.exec(name);
  if (!m?.[1]) return null;
  const n = Number(m[1]);
  return n >= 1 ? n : null;
}

export function compareCursors(a: SpoolCursor, b: SpoolCursor): number {
  return a.segment !== b.segment ? a.segment - b.segment : a.offset - b.offset;
}

/** A cursor read from disk, or null when it is not one (hand-edited, or written by something else). */
export function parseCursor(text: string): SpoolCursor | null {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null) return null;
    const { segment, offset } = value as Record<string, unknown>;
    if (!Number.isSafeInteger(segment) || (segment as number) < 1) return null;
    if (!Number.isSafeInteger(offset) || (offset as number) < 0) return null;
    return { segment: segment as number, offset: offset as number };
  } catch {
    return null;
  }
}

export interface LineSpan {
  offset: number;
  length: number;
}

/**
 * The complete lines of `buf` from `start` on (each span excludes its "\n"), and how many bytes at the end
 * belong to a line without its "\n" — a torn write.
 */
export function completeLines(buf: Buffer, start = 0): { lines: LineSpan[]; tornBytes: number } {
  const lines: LineSpan[] = [];
  let from = start;
  for (;;) {
    const nl = buf.indexOf(0x0a, from);
    if (nl < 0) break;
    if (nl > from) lines.push({ offset: from, length: nl - from });
    from = nl + 1;
  }
  return { lines, tornBytes: buf.length - from };
}

/**
 * The cursor after acknowledging everything up to `cursor`: a cursor at the very end of a segment that is
 * no longer written moves on to the start of the next one, so that segment can be deleted.
 */
export function normalizeCursor(
  cursor: SpoolCursor,
  sizes: ReadonlyMap<number, number>,
  writeSegment: number,
): SpoolCursor {
  let c = cursor;
  while (c.segment < writeSegment && c.offset >= (sizes.get(c.segment) ?? 0)) {
    c = { segment: c.segment + 1, offset: 0 };
  }
  return c;
}

/** Bytes not yet acknowledged: every segment from the cursor's on, less what the cursor has passed. */
export function pendingBytes(cursor: SpoolCursor, sizes: ReadonlyMap<number, number>): number {
  let total = 0;
  for (const [segment, size] of sizes) {
    if (segment > cursor.segment) total += size;
    else if (segment === cursor.segment) total += Math.max(0, size - cursor.offset);
  }
  return total;
}

// ---- errors ----------------------------------------------------------------------------------------

/** The spool reached its size limit: the record was NOT stored. Never dropped silently. */
export class SpoolFullError extends Error {
  constructor(
    readonly dir: string,
    readonly pendingBytes: number,
    readonly maxBytes: number,
    readonly recordBytes: number,
  ) {
    super(
      `spool ${dir} is full: ${pendingBytes} of ${maxBytes} bytes are waiting for Temporal, ` +
        `a ${recordBytes}-byte record does not fit — the symptom was NOT accepted. ` +
        'Restore the connection to Temporal, or raise KLR_OBSERVER_SPOOL_MAX_MB',
    );
    this.name = 'SpoolFullError';
  }
}

/** Another live process holds the spool directory. Two writers would interleave their appends. */
export class SpoolLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(
      `spool ${dir} is in use by process ${pid} (another observer?); ` +
        'give each observer its own KLR_OBSERVER_STATE_DIR, or stop that process',
    );
    this.name = 'SpoolLockedError';
  }
}

// ---- the spool -------------------------------------------------------------------------------------

export interface SpoolLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface SpoolOptions {
  dir: string;
  /** Most bytes of unacknowledged records; an append beyond it throws {@link SpoolFullError}. */
  maxBytes: number;
  /** A segment is closed and a new one begun once it holds this many bytes (default 4 MiB). */
  segmentBytes?: number;
  log: SpoolLog;
  /**
   * A complete line that is not JSON (disk corruption, a hand edit) is handed here before it is skipped,
   * so it is recorded rather than lost silently. Must be durable when it resolves.
   */
  onCorrupt?: (raw: string, where: string) => Promise<void>;
}

export interface SpoolEntry<T> {
  value: T;
  segment: number;
  offset: number;
  length: number;
}

interface IndexEntry {
  segment: number;
  offset: number;
  length: number;
}

/** Directories this process holds, so a stale lock with our own (reused) pid is told apart from ours. */
const heldHere = new Set<string>();

export class Spool<T> {
  private readonly index: IndexEntry[] = [];
  private head = 0;
  private readonly sizes = new Map<number, number>();
  private writeSegment = 1;
  private writer: FileHandle | undefined;
  private reader: { segment: number; handle: FileHandle } | undefined;
  /** Appends and acknowledgements run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private fullRejections = 0;

  private constructor(
    private readonly opts: SpoolOptions & { segmentBytes: number },
    private cursor: SpoolCursor,
  ) {}

  /** Opens (or creates) the spool in `dir`, recovering from whatever a crash left behind. */
  static async open<T>(options: SpoolOptions): Promise<Spool<T>> {
    const opts = { ...options, segmentBytes: options.segmentBytes ?? 4 * 1024 * 1024 };
    if (!(opts.maxBytes > 0)) throw new RangeError(`spool maxBytes must be > 0, got ${opts.maxBytes}`);
    await mkdir(opts.dir, { recursive: true });
    await acquireLock(opts.dir);
    try {
      const spool = new Spool<T>(opts, { segment: 1, offset: 0 });
      await spool.recover();
      return spool;
    } catch (err) {
      await releaseLock(opts.dir);
      throw err;
    }
  }

  /** Records waiting for acknowledgement. */
  get pendingCount(): number {
    return this.index.length - this.head;
  }

  get pendingBytes(): number {
    return pendingBytes(this.cursor, this.sizes);
  }

  get maxBytes(): number {
    return this.opts.maxBytes;
  }

  /** How many appends were refused because the spool was full, since it was opened. */
  get fullCount(): number {
    return this.fullRejections;
  }

  /** Appends one record; resolves once it is on disk (fsynced). Throws {@link SpoolFullError} when full. */
  append(value: T): Promise<void> {
    return this.serialized(() => this.appendNow(value));
  }

  /** The oldest unacknowledged record, or null when there is none. */
  async peek(): Promise<SpoolEntry<T> | null> {
    for (;;) {
      this.assertOpen();
      const entry = this.index[this.head];
      if (!entry) return null;
      const raw = await this.readEntry(entry);
      try {
        return { value: JSON.parse(raw) as T, ...entry };
      } catch (err) {
        const where = `${join(this.opts.dir, segmentName(entry.segment))} at byte ${entry.offset}`;
        this.opts.log.error({ where, error: (err as Error).message }, 'spool line is not JSON; set aside');
        await this.opts.onCorrupt?.(raw, where);
        await this.ack(entry);
      }
    }
  }

  /** Acknowledges the oldest record (which must be `entry`): it will not be handed out again. */
  ack(entry: SpoolEntry<T> | IndexEntry): Promise<void> {
    return this.serialized(async () => {
      const first = this.index[this.head];
      if (!first || first.segment !== entry.segment || first.offset !== entry.offset) {
        throw new Error('spool: only the oldest record can be acknowledged');
      }
      const next = normalizeCursor(
        { segment: entry.segment, offset: entry.offset + entry.length + 1 },
        this.sizes,
        this.writeSegment,
      );
      await this.writeCursor(next);
      this.cursor = next;
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.index.length) {
        this.index.splice(0, this.head);
        this.head = 0;
      }
      await this.deleteSegmentsBefore(next.segment);
    });
  }

  /** Waits for running appends and acknowledgements, then releases the files and the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue.catch(() => undefined);
    this.closed = true;
    await this.reader?.handle.close().catch(() => undefined);
    await this.writer?.close().catch(() => undefined);
    this.reader = undefined;
    this.writer = undefined;
    await releaseLock(this.opts.dir);
  }

  // ---- internals -----------------------------------------------------------------------------------

  private serialized<R>(fn: () => Promise<R>): Promise<R> {
    const run = this.queue.then(() => {
      this.assertOpen();
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`spool ${this.opts.dir} is closed`);
  }

  private async recover(): Promise<void> {
    const { dir, log } = this.opts;
    await unlink(join(dir, `${CURSOR_FILE}.tmp`)).catch(() => undefined);
    const segments = (await readdir(dir))
      .map(parseSegmentName)
      .filter((n): n is number => n !== null)
      .sort((a, b) => a - b);

    let cursor: SpoolCursor | null = null;
    const cursorText = await readFile(join(dir, CURSOR_FILE), 'utf8').catch(() => null);
    if (cursorText !== null) {
      cursor = parseCursor(cursorText);
      // Starting over redelivers records already acknowledged; their ids make that harmless.
      if (!cursor) log.warn({ dir }, 'spool cursor file is unreadable; replaying every segment');
    }
    cursor ??= { segment: segments[0] ?? 1, offset: 0 };

    const last = segments[segments.length - 1];
    for (const segment of segments) {
      const path = join(dir, segmentName(segment));
      if (segment < cursor.segment) {
        // Fully acknowledged; the crash came between writing the cursor and deleting the file.
        await unlink(path);
        continue;
      }
      let buf = await readFile(path);
      const start = segment === cursor.segment ? cursor.offset : 0;
      if (start > buf.length) {
        log.warn({ path, cursor: start, size: buf.length }, 'spool cursor is past the end of its segment');
        cursor = { segment, offset: buf.length };
      }
      const { lines, tornBytes } = completeLines(buf, Math.min(start, buf.length));
      if (tornBytes > 0) {
        // Appends resolve only after fsync of the whole line: a line without its "\n" was never accepted.
        log.warn(
          { path, bytes: tornBytes },
          'spool: dropping a torn last line (an append interrupted by a crash; it was never acknowledged)',
        );
        const handle = await open(path, 'r+');
        try {
          await handle.truncate(buf.length - tornBytes);
          await handle.sync();
        } finally {
          await handle.close();
        }
        buf = buf.subarray(0, buf.length - tornBytes);
      }
      this.sizes.set(segment, buf.length);
      for (const line of lines) this.index.push({ segment, ...line });
    }
    // A cursor into a segment that is gone (deleted by hand) points at nothing: start that segment afresh.
    if (!this.sizes.has(cursor.segment)) cursor = { segment: cursor.segment, offset: 0 };
    this.cursor = cursor;
    this.writeSegment = Math.max(last ?? cursor.segment, cursor.segment);
    if (!this.sizes.has(this.writeSegment)) this.sizes.set(this.writeSegment, 0);
    this.writer = await this.openSegmentForAppend(this.writeSegment);
  }

  private async openSegmentForAppend(segment: number): Promise<FileHandle> {
    const handle = await open(
      join(this.opts.dir, segmentName(segment)),
      fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT,
      0o600,
    );
    await fsyncDir(this.opts.dir); // the new file's directory entry must survive a crash too
    return handle;
  }

  private async appendNow(value: T): Promise<void> {
    const line = Buffer.from(`${JSON.stringify(value)}\n`, 'utf8');
    const pending = this.pendingBytes;
    if (pending + line.length > this.opts.maxBytes) {
      this.fullRejections++;
      throw new SpoolFullError(this.opts.dir, pending, this.opts.maxBytes, line.length);
    }
    let size = this.sizes.get(this.writeSegment) ?? 0;
    if (size > 0 && size + line.length > this.opts.segmentBytes) {
      await this.writer?.close();
      this.writer = undefined;
      this.writeSegment++;
      this.sizes.set(this.writeSegment, 0);
      size = 0;
      this.writer = await this.openSegmentForAppend(this.writeSegment);
    }
    const writer = this.writer;
    if (!writer) throw new Error(`spool ${this.opts.dir} has no open segment`);
    try {
      let written = 0;
      while (written < line.length) {
        const { bytesWritten } = await writer.write(line, written, line.length - written);
        written += bytesWritten;
      }
      await writer.datasync();
    } catch (err) {
      // Never leave half a line behind for the next append to be glued onto.
      await writer.truncate(size).catch(() => undefined);
      throw err;
    }
    this.sizes.set(this.writeSegment, size + line.length);
    this.index.push({ segment: this.writeSegment, offset: size, length: line.length - 1 });
  }

  private async readEntry(entry: IndexEntry): Promise<string> {
    if (this.reader?.segment !== entry.segment) {
      await this.reader?.handle.close().catch(() => undefined);
      this.reader = undefined;
      const handle = await open(join(this.opts.dir, segmentName(entry.segment)), 'r');
      this.reader = { segment: entry.segment, handle };
    }
    const buf = Buffer.alloc(entry.length);
    let got = 0;
    while (got < entry.length) {
      const { bytesRead } = await this.reader.handle.read(buf, got, entry.length - got, entry.offset + got);
      if (bytesRead === 0)
        throw new Error(`spool segment ${entry.segment} ended early at ${entry.offset + got}`);
      got += bytesRead;
    }
    return buf.toString('utf8');
  }

  private async writeCursor(cursor: SpoolCursor): Promise<void> {
    await writeFileDurably(join(this.opts.dir, CURSOR_FILE), `${JSON.stringify(cursor)}\n`, { mode: 0o600 });
  }

  private async deleteSegmentsBefore(segment: number): Promise<void> {
    for (const s of [...this.sizes.keys()].filter((n) => n < segment)) {
      if (this.reader?.segment === s) {
        await this.reader.handle.close().catch(() => undefined);
        this.reader = undefined;
      }
      await unlink(join(this.opts.dir, segmentName(s))).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      this.sizes.delete(s);
    }
  }
}

// ---- the lock: one writer per directory --------------------------------------------------------------

async function acquireLock(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      try {
        await handle.writeFile(`${process.pid}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      heldHere.add(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    const ours = pid === process.pid && !heldHere.has(dir); // a previous life of this pid (container restart)
    if (Number.isSafeInteger(pid) && pid > 0 && !ours && isProcessAlive(pid)) {
      throw new SpoolLockedError(dir, pid);
    }
    if (heldHere.has(dir)) throw new SpoolLockedError(dir, process.pid);
    await unlink(path).catch(() => undefined); // stale: its process is gone
  }
  throw new Error(`could not lock spool ${dir}: the lock file keeps reappearing`);
}

async function releaseLock(dir: string): Promise<void> {
  if (!heldHere.delete(dir)) return;
  await unlink(join(dir, LOCK_FILE)).catch(() => undefined);
}

/** For tests and tools: the files of a spool directory with their sizes. */
export async function spoolFiles(dir: string): Promise<{ name: string; size: number }[]> {
  const names = (await readdir(dir)).sort();
  return Promise.all(names.map(async (name) => ({ name, size: (await stat(join(dir, name))).size })));
}
