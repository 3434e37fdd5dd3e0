// The processes `npm start` runs (worker, observer, the simulated service's supervisor): each started
// with execa from an argument array, its output appended to its own log file, and stopped by its own
// pid — newest first, SIGTERM then SIGKILL after a grace — when the stack stops.
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';

export interface Child {
  name: string;
  pid: number;
  logFile: string;
  /** Size of the log file before this process wrote to it (the log is appended across runs). */
  logOffset: number;
  /** Settles when the process has exited (never rejects). */
  exited: Promise<{ code: number | undefined; signal: string | undefined }>;
}

export interface StartChildOptions {
  name: string;
  file: string;
  args: string[];
  /** The complete environment (not merged with ours: the caller decides what the child sees). */
  env: Record<string, string | undefined>;
  cwd: string;
  logFile: string;
}

const STOP_GRACE_MS = 15_000;

export class ChildSet {
  private readonly running: Array<Child & { proc: ResultPromise }> = [];
  private stopping = false;

  /** Called once when a child exits while the stack is not stopping. */
  onUnexpectedExit: (child: Child, how: string) => void = () => undefined;

  async start(opts: StartChildOptions): Promise<Child> {
    await mkdir(dirname(opts.logFile), { recursive: true });
    const logOffset = await stat(opts.logFile).then(
      (s) => s.size,
      () => 0,
    );
    const log = createWriteStream(opts.logFile, { flags: 'a' });
    await new Promise((r) => log.once('open', r));
    const proc = execa(opts.file, opts.args, {
      cwd: opts.cwd,
      env: opts.env,
      extendEnv: false,
      stdin: 'ignore',
      stdout: log,
      stderr: log,
      reject: false,
      forceKillAfterDelay: false,
    });
    if (proc.pid === undefined) {
      const r = await proc;
      throw new Error(`could not start ${opts.name} (${opts.file}): ${r.message ?? 'no pid'}`);
    }
    const exited = proc.then((r) => {
      log.end();
      return { code: r.exitCode, signal: r.signal };
    });
    const child = { name: opts.name, pid: proc.pid, logFile: opts.logFile, logOffset, exited, proc };
    this.running.push(child);
    void exited.then(({ code, signal }) => {
      if (!this.stopping) this.onUnexpectedExit(child, signal ?? `exit code ${String(code)}`);
    });
    return child;
  }

  pids(): number[] {
    return this.running.map((c) => c.pid);
  }

  /** Stops every child, the last started first (the worker before the service it heals). */
  async stopAll(say: (line: string) => void): Promise<void> {
    this.stopping = true;
    for (const child of [...this.running].reverse()) {
      if (child.proc.exitCode !== null || child.proc.signalCode !== null) continue;
      child.proc.kill('SIGTERM');
      const done = await Promise.race([child.exited.then(() => true), sleep(STOP_GRACE_MS, false)]);
      if (!done) {
        say(`${child.name} (pid ${child.pid}) did not stop within ${STOP_GRACE_MS / 1000} s: SIGKILL`);
        child.proc.kill('SIGKILL');
        await child.exited;
      }
      say(`stopped ${child.name} (pid ${child.pid})`);
    }
  }
}

/** Resolves once the child's log has `text`; throws when the child exits first or after `timeoutMs`. */
export async function waitForLogLine(child: Child, text: string, timeoutMs: number): Promise<void> {
  let exited = false;
  void child.exited.then(() => (exited = true));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = (await readFile(child.logFile).catch(() => Buffer.alloc(0)))
      .subarray(child.logOffset)
      .toString('utf8');
    if (log.includes(text)) return;
    if (exited) throw new Error(`${child.name} exited while starting; see ${child.logFile}:\n${tail(log)}`);
    if (Date.now() > deadline)
      throw new Error(`${child.name} did not start within ${timeoutMs / 1000} s; see ${child.logFile}`);
    await sleep(200);
  }
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
