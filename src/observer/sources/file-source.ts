// Follows a log file like `tail -F`, by polling (no inotify: it misses writes on network and some
// container file systems): starts at the end unless told otherwise, follows rotation (rename + new
// file: the old one is drained first), copytruncate (the file shrinks: read again from its start), a
// file that does not exist yet, and remembers its position across restarts.
import { promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { sourceKeyOf } from '../to-symptom.js';
import { MAX_LINE_CHARS, pause, type LineSource, type SourceLine } from './line-source.js';
import { loadPosition, positionFile, savePosition, type SavedPosition } from './position-state.js';

export interface FileSourceOptions {
  path: string;
  /** Directory for the position state; none = no persistence (every start is fresh). */
  stateDir?: string;
  /** Read the file from its start when there is no saved position (default: from its end). */
  fromStart?: boolean;
  /** Stop at the end of what is there now instead of following. */
  once?: boolean;
  /** Poll interval, ms (default 250). */
  pollMs?: number;
  /** Told once the follower knows where it starts: the file is open at its position, or it is missing. */
  onStarted?: (state: { path: string; exists: boolean; offset: number }) => void;
}

const CHUNK = 256 * 1024;
const NEWLINE = 0x0a;

export class FileMissingError extends Error {
  constructor(readonly path: string) {
    super(`${path}: no such file`);
    this.name = 'FileMissingError';
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
    this.stateFile = opts.stateDir ? positionFile(opts.stateDir, opts.path) : null;
  }

  /** Identity of one incarnation of the file: a rotated file's offset 0 differs from the new one's. */
  static keyOf(path: string, dev: number, ino: number, generation: number): string {
    return sourceKeyOf(`file:${path}:${dev}:${ino}:${generation}`);
  }

  async commit(line: SourceLine): Promise<void> {
    if (!this.stateFile) return;
    await savePosition(this.stateFile, line.cursor as SavedPosition);
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
          const resume = same && st.size >= saved.offset;
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
          } else {
            offset = st.size;
            nextLine = await countLines(current.handle, st.size);
          }
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
        const buffer = Buffer.allocUnsafe(CHUNK);
        const { bytesRead } = await inc.handle.read(buffer, 0, CHUNK, offset + pendingBytes);
        if (bytesRead > 0) {
          let chunk = buffer.subarray(0, bytesRead);
          let nl: number;
          while ((nl = chunk.indexOf(NEWLINE)) !== -1) {
            const piece = chunk.subarray(0, nl);
            const bytes = pendingBytes + nl + 1;
            const text = lineText(pending, piece);
            const line: SourceLine = {
              text,
              line: nextLine,
              position: offset,
              sourceKey: inc.sourceKey,
              bytes,
              cursor: {
                path,
                dev: inc.dev,
                ino: inc.ino,
                generation: inc.generation,
                offset: offset + bytes,
                nextLine: nextLine + 1,
              } satisfies SavedPosition,
            };
            offset += bytes;
            nextLine += 1;
            pending = [];
            pendingBytes = 0;
            chunk = chunk.subarray(nl + 1);
            yield line;
          }
          if (chunk.length > 0) {
            // Keep a partial line (copied: the buffer is reused) — but no more of it than we would keep.
            if (pendingBytes < MAX_LINE_CHARS * 4) pending.push(Buffer.from(chunk));
            pendingBytes += chunk.length;
          }
          continue;
        }

        // At the end of what the open file holds: rotated, truncated, or just quiet?
        const st = await statOrNull(path);
        const rotated = !st || st.ino !== inc.ino || st.dev !== inc.dev;
        const size = (await inc.handle.stat()).size;
        if (!rotated && size < offset + pendingBytes) {
          // copytruncate: the same file, emptied and written again from its start.
          current = {
            ...inc,
            generation: inc.generation + 1,
            sourceKey: FileSource.keyOf(path, inc.dev, inc.ino, inc.generation + 1),
          };
          offset = 0;
          nextLine = 1;
          pending = [];
          pendingBytes = 0;
          continue;
        }
        if (this.opts.once) {
          if (pendingBytes > 0) {
            // The last line has no newline yet: hand it over, but its cursor stays at its start so a
            // later run reads it again once it is complete.
            yield {
              text: lineText(pending, Buffer.alloc(0)),
              line: nextLine,
              position: offset,
              sourceKey: inc.sourceKey,
              bytes: pendingBytes,
              cursor: { path, dev: inc.dev, ino: inc.ino, generation: inc.generation, offset, nextLine },
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
                text: lineText(pending, Buffer.alloc(0)),
                line: nextLine,
                position: offset,
                sourceKey: inc.sourceKey,
                bytes: pendingBytes,
                cursor: { path, dev: next.dev, ino: next.ino, generation: 0, offset: 0, nextLine: 1 },
              };
            }
            await inc.handle.close();
            current = next;
            offset = 0;
            nextLine = 1;
            pending = [];
            pendingBytes = 0;
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

function lineText(pending: Buffer[], last: Buffer): string {
  const all = pending.length === 0 ? last : Buffer.concat([...pending, last]);
  const text = all.subarray(0, MAX_LINE_CHARS * 4).toString('utf8');
  const trimmed = text.endsWith('\r') ? text.slice(0, -1) : text;
  return trimmed.length > MAX_LINE_CHARS ? trimmed.slice(0, MAX_LINE_CHARS) : trimmed;
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
