// Watching the service's log for GPU memory failures: poll the file's size, read the new bytes, split
// lines. No shell, no `tail`, no inotify (which misses writes on some network and container file systems).
// A log that shrinks (rotated or truncated) is read again from its start.
import { promises as fs } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { sleep } from './health.js';

/**
 * Lines that show vLLM failing for GPU memory: PyTorch's CUDA OOM (`torch.OutOfMemoryError: CUDA out of
 * memory. Tried to allocate …`, `RuntimeError: CUDA error: out of memory`), the V1 engine dying after it
 * (`EngineDeadError`), and the start-up ValueErrors about memory or the KV cache (`No available memory for
 * the cache blocks`, `Free memory on device … is less than desired GPU memory utilization`, `To serve at
 * least one request with the models's max seq len … KV cache is needed …`).
 */
export const GPU_MEMORY_FAILURE_PATTERNS: readonly RegExp[] = Object.freeze([
  /CUDA out of memory/i,
  /CUDA error: out of memory/i,
  /OutOfMemoryError/,
  /EngineDeadError/,
  /ValueError:.*(?:memory|KV cache|cache blocks|gpu_memory_utilization)/i,
]);

export const isGpuMemoryFailure = (line: string): boolean =>
  GPU_MEMORY_FAILURE_PATTERNS.some((p) => p.test(line));

const MAX_LINE = 8 * 1024;
const MAX_READ = 1024 * 1024;

/** Reads a growing file from an offset, line by line, handing back the first GPU memory failure. */
export class LogWatcher {
  private offset: number;
  private decoder = new StringDecoder('utf8');
  private partial = '';

  private constructor(
    readonly path: string,
    offset: number,
  ) {
    this.offset = offset;
  }

  /** Size of the file now (0 when it does not exist yet). */
  static async sizeOf(path: string): Promise<number> {
    try {
      return (await fs.stat(path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
  }

  /** A watcher that sees only what is written from now on. */
  static async fromEnd(path: string): Promise<LogWatcher> {
    return new LogWatcher(path, await LogWatcher.sizeOf(path));
  }

  /** A watcher from a known offset (e.g. the log's size just before a restart). */
  static at(path: string, offset: number): LogWatcher {
    return new LogWatcher(path, offset);
  }

  /** The offset read up to. */
  get position(): number {
    return this.offset;
  }

  /**
   * Read what was appended since the last call; the first complete line that shows a GPU memory failure,
   * or null. With `flush`, a last line without its newline counts too.
   */
  async poll(flush = false): Promise<string | null> {
    let size: number;
    try {
      size = (await fs.stat(this.path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // not written yet, or rotated away
      throw err;
    }
    if (size < this.offset) {
      // Truncated or replaced by a new file: what is there now is new.
      this.offset = 0;
      this.partial = '';
      this.decoder = new StringDecoder('utf8');
    }
    let found: string | null = null;
    while (found === null && size > this.offset) {
      const length = Math.min(size - this.offset, MAX_READ);
      const buffer = Buffer.alloc(length);
      const handle = await fs.open(this.path, 'r');
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(buffer, 0, length, this.offset));
      } finally {
        await handle.close();
      }
      if (bytesRead === 0) break;
      this.offset += bytesRead;
      found = this.scan(this.decoder.write(buffer.subarray(0, bytesRead)));
    }
    if (found === null && flush && this.partial !== '') {
      const last = this.partial;
      this.partial = '';
      if (isGpuMemoryFailure(last)) found = last.trim();
    }
    return found;
  }

  private scan(text: string): string | null {
    const lines = (this.partial + text).split('\n');
    this.partial = (lines.pop() ?? '').slice(-MAX_LINE);
    for (const line of lines) if (isGpuMemoryFailure(line)) return line.replace(/\r$/, '').trim();
    return null;
  }
}

export interface WatchLogOptions {
  path: string;
  /** How long to watch, ms. */
  durationMs: number;
  /** Where to start; default the file's end at the call. */
  fromOffset?: number;
  /** Poll interval, ms (default 250). */
  intervalMs?: number;
  /** Stops the watch at once, rejecting with the signal's reason. */
  signal?: AbortSignal;
  /** Called after every poll (for heartbeats). */
  onPoll?: (elapsedMs: number) => void;
}

/**
 * Watch the log for `durationMs`: resolves with the first line that shows a GPU memory failure as soon as it
 * is written, or null when the period ends without one.
 */
export async function watchLog(opts: WatchLogOptions): Promise<string | null> {
  const watcher =
    opts.fromOffset === undefined
      ? await LogWatcher.fromEnd(opts.path)
      : LogWatcher.at(opts.path, opts.fromOffset);
  const intervalMs = opts.intervalMs ?? 250;
  const started = performance.now();
  const end = started + Math.max(0, opts.durationMs);
  for (;;) {
    const left = end - performance.now();
    const found = await watcher.poll(left <= 0);
    if (found !== null) return found;
    if (left <= 0) return null;
    opts.onPoll?.(Math.round(performance.now() - started));
    await sleep(Math.min(intervalMs, left), opts.signal);
  }
}
