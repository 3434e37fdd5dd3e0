// Reads log lines from stdin (`journalctl -u vllm -o cat | healctl observe -`) until it closes.
import type { Readable } from 'node:stream';
import { sourceKeyOf } from '../to-symptom.js';
import type { LineSource, SourceLine } from './line-source.js';
import { mergeLines } from './stream-source.js';

export class StdinSource implements LineSource {
  readonly description = 'stdin';
  readonly stablePositions = false;
  constructor(private readonly input: Readable = process.stdin) {}

  lines(signal?: AbortSignal): AsyncIterable<SourceLine> {
    if (signal) signal.addEventListener('abort', () => this.input.destroy(), { once: true });
    return mergeLines([this.input], sourceKeyOf('stdin'), { line: 1, position: 0 });
  }

  async commit(): Promise<void> {
    // Nothing to remember: stdin cannot be re-read.
  }
}
