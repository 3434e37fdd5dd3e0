// Lines from streams (a command's stdout and stderr, stdin). Positions are line ordinals within one run;
// symptom ids come from the line's content instead (see LineSource.stablePositions).
import type { Readable } from 'node:stream';
import { MAX_LINE_CHARS, type SourceLine } from './line-source.js';

export interface RawLine {
  text: string;
  /** Bytes the line took, newline included. */
  bytes: number;
  /** The line was longer than MAX_LINE_CHARS: `text` is its start, the rest was dropped. */
  truncated: boolean;
}

/** Splits a byte stream into lines (a last line without newline counts), capped at MAX_LINE_CHARS. */
export async function* splitLines(stream: Readable): AsyncGenerator<RawLine> {
  let partial = '';
  let partialBytes = 0;
  let dropping = false;
  const decoder = new TextDecoder('utf-8');
  // `whole` is all that was kept of a line: at most MAX_LINE_CHARS + 1 characters, one more than the cap so
  // that a "\r" there is seen as the line's end rather than a dropped rest. `dropped`: there was more.
  const emit = (whole: string, bytes: number, dropped: boolean): RawLine => {
    const text = whole.endsWith('\r') ? whole.slice(0, -1) : whole;
    const truncated = dropped || text.length > MAX_LINE_CHARS;
    return { text: truncated ? text.slice(0, MAX_LINE_CHARS) : text, bytes, truncated };
  };
  for await (const chunk of stream) {
    const buffer = chunk as Buffer;
    const text = decoder.decode(buffer, { stream: true });
    let from = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', from)) !== -1) {
      const piece = dropping ? '' : text.slice(from, nl);
      const whole = (partial + piece).slice(0, MAX_LINE_CHARS + 1);
      const bytes = partialBytes + Buffer.byteLength(text.slice(from, nl)) + 1;
      const dropped = dropping;
      partial = '';
      partialBytes = 0;
      dropping = false;
      from = nl + 1;
      yield emit(whole, bytes, dropped);
    }
    const rest = text.slice(from);
    partialBytes += Buffer.byteLength(rest);
    if (!dropping) {
      partial += rest;
      if (partial.length > MAX_LINE_CHARS + 1) {
        partial = partial.slice(0, MAX_LINE_CHARS + 1);
        dropping = true;
      }
    }
  }
  partial += decoder.decode();
  if (partialBytes > 0 || partial !== '') yield emit(partial, partialBytes, dropping);
}

/**
 * Lines of several streams merged as they arrive (whole lines: a partial stdout line never swallows a
 * stderr line), numbered from `start`, until all of them end.
 */
export async function* mergeLines(
  streams: Readable[],
  sourceKey: string,
  start: { line: number; position: number },
): AsyncGenerator<SourceLine> {
  const queue: RawLine[] = [];
  let open = streams.length;
  // A holder, not a `let`: the readers assign it from closures.
  const failed: { error: Error | null } = { error: null };
  let wake: (() => void) | null = null;
  const notify = () => {
    wake?.();
    wake = null;
  };
  for (const stream of streams) {
    void (async () => {
      try {
        for await (const l of splitLines(stream)) {
          queue.push(l);
          notify();
        }
      } catch (err) {
        failed.error ??= err instanceof Error ? err : new Error('reading a stream failed', { cause: err });
      } finally {
        open -= 1;
        notify();
      }
    })();
  }
  let line = start.line;
  let position = start.position;
  for (;;) {
    const next = queue.shift();
    if (next) {
      yield {
        text: next.text,
        line,
        position,
        sourceKey,
        bytes: next.bytes,
        truncated: next.truncated,
        cursor: null,
      };
      line += 1;
      position += 1;
      continue;
    }
    if (failed.error) throw failed.error;
    if (open === 0) return;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}
