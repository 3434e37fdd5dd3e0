// Lines from a stream (a command's output, stdin). Positions are line ordinals within one run; symptom
// ids come from the line's content instead (see LineSource.stablePositions).
import type { Readable } from 'node:stream';
import { MAX_LINE_CHARS, type SourceLine } from './line-source.js';

/** Splits a byte stream into lines (a last line without newline counts), capped at MAX_LINE_CHARS. */
export async function* streamLines(
  stream: Readable,
  sourceKey: string,
  start: { line: number; position: number },
): AsyncGenerator<SourceLine> {
  let line = start.line;
  let position = start.position;
  let partial = '';
  let dropping = false;
  const decoder = new TextDecoder('utf-8');
  const emit = (text: string, bytes: number): SourceLine => {
    const trimmed = text.endsWith('\r') ? text.slice(0, -1) : text;
    const out: SourceLine = { text: trimmed, line, position, sourceKey, bytes, cursor: null };
    line += 1;
    position += 1;
    return out;
  };
  for await (const chunk of stream) {
    const text = decoder.decode(chunk as Buffer, { stream: true });
    let from = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', from)) !== -1) {
      const piece = dropping ? '' : text.slice(from, nl);
      const full = (partial + piece).slice(0, MAX_LINE_CHARS);
      partial = '';
      dropping = false;
      from = nl + 1;
      yield emit(full, Buffer.byteLength(full) + 1);
    }
    if (!dropping) {
      partial += text.slice(from);
      if (partial.length > MAX_LINE_CHARS) {
        partial = partial.slice(0, MAX_LINE_CHARS);
        dropping = true;
      }
    }
  }
  partial += decoder.decode();
  if (partial !== '') yield emit(partial.slice(0, MAX_LINE_CHARS), Buffer.byteLength(partial));
}
