// Follows a command's output (`journalctl -f -u vllm -o cat`, `docker logs -f vllm`): stdout and stderr
// interleaved as the program writes them (docker logs replays the container's stderr on its stderr).
// No shell: execa with the argument array. When the command exits and we are not in `once` mode, it is
// started again after a backoff (1 s doubling to 30 s; reset once it has run for a minute).
import { execa } from 'execa';
import { sourceKeyOf } from '../to-symptom.js';
import { pause, type LineSource, type SourceLine } from './line-source.js';
import { mergeLines } from './stream-source.js';

export interface CommandSourceOptions {
  argv: string[];
  /** Stop when the command exits (default: restart it). */
  once?: boolean;
  backoff?: { initialMs?: number; maxMs?: number };
  /** Told when the command exits or cannot start (for logs). */
  onExit?: (info: { exitCode: number | undefined; error?: string; restartInMs: number | null }) => void;
}

export class CommandFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandFailedError';
  }
}

export class CommandSource implements LineSource {
  readonly description: string;
  readonly stablePositions = false;
  private readonly sourceKey: string;

  constructor(private readonly opts: CommandSourceOptions) {
    if (opts.argv.length === 0) throw new Error('CommandSource needs a program to run');
    this.description = `command ${opts.argv.join(' ')}`;
    this.sourceKey = sourceKeyOf(`command:${opts.argv.join('\u0000')}`);
  }

  async commit(): Promise<void> {
    // A command's output cannot be re-read from a position; ids from content make replays harmless.
  }

  async *lines(signal?: AbortSignal): AsyncGenerator<SourceLine> {
    const [file, ...args] = this.opts.argv as [string, ...string[]];
    const initial = this.opts.backoff?.initialMs ?? 1000;
    const max = this.opts.backoff?.maxMs ?? 30_000;
    let delay = initial;
    let line = 1;
    let position = 0;
    while (!signal?.aborted) {
      const started = Date.now();
      const child = execa(file, args, {
        stdin: 'ignore',
        buffer: false,
        reject: false,
        cancelSignal: signal,
        forceKillAfterDelay: 2000,
      });
      let spawnError: string | undefined;
      try {
        const streams = [child.stdout, child.stderr].filter((s) => s !== null && s !== undefined);
        for await (const l of mergeLines(streams, this.sourceKey, { line, position })) {
          line = l.line + 1;
          position = l.position + 1;
          yield l;
          if (signal?.aborted) return;
        }
      } finally {
        if (!child.killed && child.exitCode === null) child.kill();
      }
      const result = await child;
      if (result.failed && result.exitCode === undefined && !result.isCanceled) {
        spawnError = result.shortMessage ?? result.message;
      }
      if (signal?.aborted) return;
      if (this.opts.once) {
        if (spawnError) throw new CommandFailedError(spawnError);
        return;
      }
      if (Date.now() - started > 60_000) delay = initial;
      this.opts.onExit?.({
        exitCode: result.exitCode,
        ...(spawnError ? { error: spawnError } : {}),
        restartInMs: delay,
      });
      await pause(delay, signal);
      delay = Math.min(max, delay * 2);
    }
  }
}
