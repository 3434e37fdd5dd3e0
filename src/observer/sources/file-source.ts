// Follows a log file like `tail -F`, by polling (no inotify: it misses writes on network and some
// container file systems): starts at the end unless told otherwise, follows rotation (rename + new
// file: the old one is drained first), copytruncate (the bytes before our position change: read again
// from its start), a file that does not exist yet, and remembers its position across restarts.
import { promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { sourceKeyOf } from '../to-symptom.js';
import { MAX_LINE_CHARS, pause, type LineSource, type SourceLine } from './line-source.js';
import { loadPosition, positionFile, savePosition, type SavedPosition } from './position-state.js';

export interface FileSourceOptions {
  path: string;
  /** Directory for the position state; none = no persistence (every start is fresh). */
  stateDir?: string;
  /** The service the position state file is named by (see positionFile); none: the path alone. */
  stateName?: string | null;
  /** Read the file from its start when there is no saved position (default: from its end). */
  fromStart?: boolean;
  /** Stop at the end of what is there now instead of following. */
  once?: boolean;
  /** Poll interval, ms (default 250). */
  pollMs?: number;
  /** Told once the follower knows where it starts: the file is open at its position, or it is missing. */
  onStarted?: (state: { path: string; exists: boolean; offset: number }) => void;
  /** Told when the follower starts over at offset 0: the file was truncated in place, or replaced. */
  onStartOver?: (event: { path: string; reason: 'truncated' | 'replaced'; whileStopped: boolean }) => void;
}

const CHUNK = 256 * 1024;
const NEWLINE = 0x0a;
/** Bytes kept from the start of the file and from just before the read position (see Fingerprint). */
const PRINT_BYTES = 64;

export class FileMissingError extends Error {
  constructor(readonly path: string) {
    super(`${path}: no such file`);
    this.name = 'FileMissingError';
  }
}

/** What a line's cursor holds: the saved position, with the bytes before its offset not yet encoded. */
type Cursor = Omit<SavedPosition, 'tail'> & { tail: Buffer };

/**
 * What the follower has read of the current incarnation, in brief: its first bytes and the bytes just
 * before the read position. A log is only ever appended to, so both stay as they were. When they do not,
 * the file was truncated in place — even when it has grown past our offset again since: copytruncate
 * followed by a burst of writes before the next poll keeps the inode and outgrows the old size, and a
 * follower that only compared sizes would read on from the old offset and skip the new file's start.
 */
class Fingerprint {
  head: Buffer = Buffer.alloc(0);
  tail: Buffer = Buffer.alloc(0);

  /** Taken from the file itself, when reading starts at `at` rather than at 0. */
  static async of(handle: FileHandle, at: number): Promise<Fingerprint> {
    const print = new Fingerprint();
    const n = Math.min(PRINT_BYTES, at);
    print.head = await readAt(handle, 0, n);
    print.tail = await readAt(handle, at - n, n);
    return print;
  }

  /** `data` was read at the read position (copied: the chunk must not be kept alive). */
  consume(data: Buffer): void {
    if (this.head.length < PRINT_BYTES) {
      this.head = Buffer.concat([this.head, data.subarray(0, PRINT_BYTES - this.head.length)]);
    }
    this.tail = Buffer.from(lastBytes(this.tail, data));
  }

  /** Whether the file still holds what was read, up to the read position `at`. */
  async holds(handle: FileHandle, at: number): Promise<boolean> {
    // A tail shorter than it should be: the file was already shorter than `at` when it was taken.
    if (this.tail.length < Math.min(PRINT_BYTES, at)) return false;
    const head = await readAt(handle, 0, this.head.length);
    const tail = await readAt(handle, at - this.tail.length, this.tail.length);
    return head.equals(this.head) && tail.equals(this.tail);
  }
}

interface Incarnation {
  handle: FileHandle;
  dev: number;
  ino: number;
  generation: number;
  sourceKey: string;
}

export class FileSource implements LineSource {
  readonly description: string;
  readonly stablePositions = true;
  private readonly stateFile: string | null;

  constructor(private readonly opts: FileSourceOptions) {
    this.description = `file ${opts.path}`;
    this.stateFile = opts.stateDir ? positionFile(opts.stateDir, opts.path, opts.stateName ?? null) : null;
  }

  /** Identity of one incarnation of the file: a rotated file's offset 0 differs from the new one's. */
  static keyOf(path: string, dev: number, ino: number, generation: number): string {
    return sourceKeyOf(`file:${path}:${dev}:${ino}:${generation}`);
  }

  async commit(line: SourceLine): Promise<void> {
    if (!this.stateFile) return;
    const cursor = line.cursor as Cursor;
    await savePosition(this.stateFile, { ...cursor, tail: cursor.tail.toString('base64') });
  }

  async *lines(signal?: AbortSignal): AsyncGenerator<SourceLine> {
    const { path } = this.opts;
    const pollMs = this.opts.pollMs ?? 250;
    const saved = this.stateFile ? await loadPosition(this.stateFile) : null;
    let current: Incarnation | null = null;
    let offset = 0;
    let nextLine = 1;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    // What was read of the current incarnation up to `offset + pendingBytes`, and the bytes before `offset`.
    let print = new Fingerprint();
    let tailAtOffset: Buffer = Buffer.alloc(0);

    const open = async (generation: number): Promise<Incarnation | null> => {
      try {
        const handle = await fs.open(path, 'r');
        const real = await handle.stat();
        return {
          handle,
          dev: real.dev,
          ino: real.ino,
          generation,
          sourceKey: FileSource.keyOf(path, real.dev, real.ino, generation),
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    };

    try {
      // First incarnation: the saved position when it is about this very file, else its end (or start).
      let first = true;
      while (!current) {
        if (signal?.aborted) return;
        // Open first, then judge by what was opened (the path may be rotated between a stat and an open).
        const opened = await open(0);
        if (opened) {
          const st = await opened.handle.stat();
          const same = saved !== null && saved.dev === opened.dev && saved.ino === opened.ino;
          // The same file, at least as long, and (when the position says) the same bytes before it.
          const savedTail = saved?.tail !== undefined ? Buffer.from(saved.tail, 'base64') : null;
          const resume =
            same &&
            st.size >= saved.offset &&
            (savedTail === null ||
              (await readAt(opened.handle, saved.offset - savedTail.length, savedTail.length)).equals(
                savedTail,
              ));
          const generation = resume ? saved.generation : same ? saved.generation + 1 : 0;
          current = {
            ...opened,
            generation,
            sourceKey: FileSource.keyOf(path, opened.dev, opened.ino, generation),
          };
          if (resume) {
            offset = saved.offset;
            nextLine = saved.nextLine;
          } else if (saved || this.opts.fromStart || !first) {
            // A saved position about another (rotated-away or truncated) file, or a file that appeared
            // after we started watching: everything in it is new.
            offset = 0;
            if (saved) {
              const reason = same ? 'truncated' : 'replaced';
              this.opts.onStartOver?.({ path, reason, whileStopped: true });
            }
          } else {
            offset = st.size;
            nextLine = await countLines(current.handle, st.size);
          }
          print = offset > 0 ? await Fingerprint.of(current.handle, offset) : new Fingerprint();
          tailAtOffset = print.tail;
        } else if (this.opts.once) {
          throw new FileMissingError(path);
        }
        if (first) this.opts.onStarted?.({ path, exists: current !== null, offset });
        first = false;
        if (!current) await pause(pollMs, signal);
      }

      for (;;) {
        if (signal?.aborted) return;
        const inc: Incarnation = current;
        if (!(await print.holds(inc.handle, offset + pendingBytes))) {
          // Truncated in place (copytruncate), whatever its size now: the same file, from its start.
          current = {
            ...inc,
            generation: inc.generation + 1,
            sourceKey: FileSource.keyOf(path, inc.dev, inc.ino, inc.generation + 1),
          };
          offset = 0;
          nextLine = 1;
          pending = [];
          pendingBytes = 0;
          print = new Fingerprint();
          tailAtOffset = print.tail;
          this.opts.onStartOver?.({ path, reason: 'truncated', whileStopped: false });
          continue;
        }
        const buffer = Buffer.allocUnsafe(CHUNK);
        const { bytesRead } = await inc.handle.read(buffer, 0, CHUNK, offset + pendingBytes);
        if (bytesRead > 0) {
          const data = buffer.subarray(0, bytesRead);
          const before = print.tail;
          print.consume(data);
          let start = 0;
          let nl: number;
          while ((nl = data.indexOf(NEWLINE, start)) !== -1) {
            const piece = data.subarray(start, nl);
            const bytes = pendingBytes + nl + 1 - start;
            const { text, truncated } = lineText(pending, piece, bytes - 1);
            tailAtOffset = lastBytes(before, data.subarray(0, nl + 1));
            const cursor: Cursor = {
              path,
              dev: inc.dev,
              ino: inc.ino,
              generation: inc.generation,
              offset: offset + bytes,
              nextLine: nextLine + 1,
              tail: tailAtOffset,
            };
            const line: SourceLine = {
              text,
              line: nextLine,
              position: offset,
              sourceKey: inc.sourceKey,
              bytes,
              truncated,
              cursor,
            };
            offset += bytes;
            nextLine += 1;
            pending = [];
            pendingBytes = 0;
            start = nl + 1;
            yield line;
          }
          if (start < data.length) {
            // Keep a partial line (copied: the buffer is reused) — but no more of it than we would keep.
            if (pendingBytes < MAX_LINE_CHARS * 4) pending.push(Buffer.from(data.subarray(start)));
            pendingBytes += data.length - start;
          }
          continue;
        }

        // At the end of what the open file holds: rotated, or just quiet? (Truncation is checked above.)
        const st = await statOrNull(path);
        const rotated = !st || st.ino !== inc.ino || st.dev !== inc.dev;
        if (this.opts.once) {
          if (pendingBytes > 0) {
            // The last line has no newline yet: hand it over, but its cursor stays at its start so a
            // later run reads it again once it is complete.
            yield {
              ...lineText(pending, Buffer.alloc(0), pendingBytes),
              line: nextLine,
              position: offset,
              sourceKey: inc.sourceKey,
              bytes: pendingBytes,
              cursor: {
                path,
                dev: inc.dev,
                ino: inc.ino,
                generation: inc.generation,
                offset,
                nextLine,
                tail: tailAtOffset,
              } satisfies Cursor,
            };
          }
          return;
        }
        if (rotated && st) {
          // The old file is drained (a rename keeps our handle valid): move to the new one, from its start.
          const next = await open(0);
          if (next) {
            if (pendingBytes > 0) {
              // A last line the old file never finished: it will not be finished now.
              yield {
                ...lineText(pending, Buffer.alloc(0), pendingBytes),
                line: nextLine,
                position: offset,
                sourceKey: inc.sourceKey,
                bytes: pendingBytes,
                cursor: {
                  path,
                  dev: next.dev,
                  ino: next.ino,
                  generation: 0,
                  offset: 0,
                  nextLine: 1,
                  tail: Buffer.alloc(0),
                } satisfies Cursor,
              };
            }
            await inc.handle.close();
            current = next;
            offset = 0;
            nextLine = 1;
            pending = [];
            pendingBytes = 0;
            print = new Fingerprint();
            tailAtOffset = print.tail;
            this.opts.onStartOver?.({ path, reason: 'replaced', whileStopped: false });
            continue;
          }
        }
        await pause(pollMs, signal);
      }
    } finally {
      await current?.handle.close().catch(() => undefined);
    }
  }
}

/**
 * The text of a line whose `contentBytes` (newline excluded) are `pending` then `last`, capped at
 * MAX_LINE_CHARS. More than 4 bytes a character cannot be, so a line of more bytes than 4 × MAX_LINE_CHARS
 * (of which `pending` may have kept only that many) is longer than the cap whatever it decodes to.
 */
function lineText(
  pending: Buffer[],
  last: Buffer,
  contentBytes: number,
): { text: string; truncated: boolean } {
  const all = pending.length === 0 ? last : Buffer.concat([...pending, last]);
  const text = all.subarray(0, MAX_LINE_CHARS * 4).toString('utf8');
  const trimmed = text.endsWith('\r') ? text.slice(0, -1) : text;
  const truncated = contentBytes > MAX_LINE_CHARS * 4 || trimmed.length > MAX_LINE_CHARS;
  return { text: truncated ? trimmed.slice(0, MAX_LINE_CHARS) : trimmed, truncated };
}

/** The last PRINT_BYTES bytes of `before` followed by `data` (a view into `data` when it is long enough). */
function lastBytes(before: Buffer, data: Buffer): Buffer {
  if (data.length >= PRINT_BYTES) return data.subarray(data.length - PRINT_BYTES);
  return Buffer.concat([before.subarray(Math.max(0, before.length - (PRINT_BYTES - data.length))), data]);
}

/** Up to `length` bytes at `at` (fewer where the file ends sooner). */
async function readAt(handle: FileHandle, at: number, length: number): Promise<Buffer> {
  if (length <= 0) return Buffer.alloc(0);
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, at);
  return buffer.subarray(0, bytesRead);
}

async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await fs.stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Lines before `end` (so line numbers stay true when we start at the end). */
async function countLines(handle: FileHandle, end: number): Promise<number> {
  const buffer = Buffer.allocUnsafe(CHUNK);
  let count = 1;
  for (let at = 0; at < end;) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(CHUNK, end - at), at);
    if (bytesRead === 0) break;
    for (let i = 0; i < bytesRead; i++) if (buffer[i] === NEWLINE) count++;
    at += bytesRead;
  }
  return count;
}
