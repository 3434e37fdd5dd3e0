// A child process that says when it is ready: started with execa, resolved once its stdout carries the
// ready text (rejected, with what it printed, if it exits first), stopped by its own pid — SIGTERM, then
// SIGKILL after a grace period. The test workers and the bench workers all start this way.
import { setTimeout as delay } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';

export interface ReadyProcess {
  proc: ResultPromise;
  pid: number;
  /** Everything it printed on stdout so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after `stopGraceMs`; idempotent. */
  stop(): Promise<void>;
}

export async function startReadyProcess(
  args: readonly string[],
  opts: { cwd: string; env: Record<string, string>; ready: string; name: string; stopGraceMs?: number },
): Promise<ReadyProcess> {
  const proc = execa(process.execPath, args, {
    cwd: opts.cwd,
    env: opts.env,
    stdout: 'pipe',
    stderr: 'inherit',
    reject: false,
  });
  let text = '';
  await new Promise<void>((ready, fail) => {
    proc.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes(opts.ready)) ready();
    });
    void proc.then((r) =>
      fail(new Error(`${opts.name} exited early (${String(r.exitCode ?? r.signal)}): ${text}`)),
    );
  });
  let stopped: Promise<void> | undefined;
  return {
    proc,
    pid: proc.pid ?? 0,
    output: () => text,
    stop() {
      stopped ??= (async () => {
        proc.kill('SIGTERM');
        const done = await Promise.race([
          proc.then(() => true),
          delay(opts.stopGraceMs ?? 40_000, false, { ref: false }),
        ]);
        if (!done) {
          proc.kill('SIGKILL');
          await proc;
        }
      })();
      return stopped;
    },
  };
}
