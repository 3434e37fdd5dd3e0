// The shape every source of log lines has: files, a command's output, stdin.

export interface SourceLine {
  /** The line without its newline (capped at MAX_LINE_CHARS; the rest of a longer line is dropped). */
  text: string;
  /** 1-based line number in its source. */
  line: number;
  /** Byte offset of the line's start (files) or its ordinal (streams). */
  position: number;
  /** Identifies what the line was read from (one file incarnation, one command, stdin). */
  sourceKey: string;
  /** Bytes the line took in its source, newline included. */
  bytes: number;
  /** True when the line was longer than MAX_LINE_CHARS and the rest of it was dropped. */
  truncated?: boolean;
  /** Opaque progress marker: committing it records that this line and all before it were handled. */
  readonly cursor: unknown;
}

export interface LineSource {
  /** What is read, for messages ("file /var/log/vllm.log", "command journalctl -f -u vllm"). */
  readonly description: string;
  /**
   * True when positions are stable across restarts (files: byte offsets). Streams (commands, stdin) replay
   * differently each time, so their symptom ids come from the line's content instead.
   */
  readonly stablePositions: boolean;
  /** The lines, in order, until the input ends (`once`, or a stream closing) or the signal aborts. */
  lines(signal?: AbortSignal): AsyncIterable<SourceLine>;
  /** Persist that `line` and every line before it were handled; a restart resumes after it. */
  commit(line: SourceLine): Promise<void>;
}

/** Longest line kept; vLLM's config dumps are long, but not this long. */
export const MAX_LINE_CHARS = 64 * 1024;

/** Sleeps `ms`, or less when the signal aborts (never rejects). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
