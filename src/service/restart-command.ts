// The service's restart command (KLR_SERVICE_RESTART_CMD), run by the canary, the restore and
// `healctl rollback`. KLR_SERVICE_RESTART_TIMEOUT bounds the whole restart, child processes included.
//
// How:
//  - The command is an argument array, spawned directly (never through a shell), in a process group of its
//    own (`detached: true`: the child calls setsid(), its pid is the group's id). Its descendants inherit
//    the group.
//  - At the deadline, or when the caller's AbortSignal fires, the whole group gets SIGTERM; whatever is
//    still alive 2 s later ({@link RESTART_KILL_GRACE_MS}) gets SIGKILL. The call settles once the group
//    is empty, or 1 s after the SIGKILL at the latest (a process stuck in the kernel cannot be waited for).
//  - Its stdout and stderr go to one temporary file (mode 0600, in a private directory under os.tmpdir()),
//    not to pipes: a pipe stays open as long as any descendant holds it, so waiting for it to close would
//    wait for the slowest grandchild (issue 13: `bash -c 'sleep 777 & sleep 778'` held a canary for minutes).
//    A file never blocks a writer and never SIGPIPEs one. The call settles on the direct child's exit; the
//    last lines of the file are the output / the error's detail, then the file is deleted.
//  - A normal exit of the direct child (zero or not) kills nothing: a restart command may legitimately
//    leave the service running in the background (`bash -c 'vllm serve … &'`, a supervisor). Such a
//    service keeps writing into the deleted temp file (disk it holds until it exits): send its output to
//    its own log (`… >>/var/log/vllm.log 2>&1 &`).
//
// Not covered: a descendant that starts its own session or group (setsid, a daemon that double-forks with
// setsid, a shell with job control) leaves the group and outlives the deadline, and so does a process of
// the group the worker's user may not signal (one that changed its user id). The robust restart command is
// `systemctl restart <unit>`: systemd stops everything in the unit's cgroup, however it forked, and the
// service's output goes to the journal.
//
// Why node:child_process and not execa: execa's timeout and cancelSignal kill only the direct child, and
// its promise waits for the stdio streams to end, which is exactly what grandchildren keep from happening.
// With the output in a file and the group signalled by hand, execa would add nothing but a second model of
// the same child; spawn plus its 'exit' event is the whole story.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { abortReason } from './health.js';
import { readProcStat } from './proc-info.js';

/** Between the SIGTERM to the command's process group and the SIGKILL, ms. */
export const RESTART_KILL_GRACE_MS = 2_000;
/** After the SIGKILL, the longest the call waits for the group to be gone, ms. */
const AFTER_KILL_WAIT_MS = 1_000;
const POLL_MS = 50;
/** Of the output file, only this many last bytes are read. */
const READ_TAIL_BYTES = 64 * 1024;

/** The restart command could not do its job. */
export class RestartCommandError extends Error {
  constructor(
    message: string,
    /** not_found: missing or not executable (retrying cannot help); failed: exited non-zero; timed_out. */
    readonly kind: 'not_found' | 'failed' | 'timed_out',
  ) {
    super(message);
    this.name = 'RestartCommandError';
  }
}

/** The last 3 lines of the output, joined with ` | `, at most `max` characters. */
const tail = (text: string, max = 400): string => {
  const last = text.trim().split('\n').slice(-3).join(' | ');
  return last.length > max ? `…${last.slice(-max)}` : last;
};

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Signal every process of the group; a group already gone (ESRCH) or out of reach (EPERM) is no error. */
function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    // ESRCH: nothing left; EPERM: nothing we may signal
  }
}

/**
 * Whether a live process is still in the group. kill(-pgid, 0) alone also counts zombies, and an orphaned
 * zombie stays until the host's init reaps it, which some container inits never do; on Linux, /proc tells
 * live members from zombies.
 */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false; // ESRCH: nobody left
  }
  if (process.platform !== 'linux') return true;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true; // no /proc: trust kill(2)
  }
  for (const name of entries) {
    if (name.charCodeAt(0) > 57) continue; // not a pid (digits sort first)
    const stat = readProcStat(name);
    if (stat && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') return true;
  }
  return false;
}

/** Polls until the group is empty; false when `withinMs` passed first. */
async function groupGone(pgid: number, withinMs: number): Promise<boolean> {
  const until = performance.now() + withinMs;
  for (;;) {
    if (!groupAlive(pgid)) return true;
    if (performance.now() >= until) return false;
    await delay(POLL_MS);
  }
}

/** SIGTERM to the group, SIGKILL after the grace. Says how it ended. */
async function endGroup(pgid: number): Promise<'terminated' | 'killed' | 'survived'> {
  signalGroup(pgid, 'SIGTERM');
  if (await groupGone(pgid, RESTART_KILL_GRACE_MS)) return 'terminated';
  signalGroup(pgid, 'SIGKILL');
  return (await groupGone(pgid, AFTER_KILL_WAIT_MS)) ? 'killed' : 'survived';
}

/** The output's last lines ('' when there is none or it cannot be read). */
async function readTail(path: string): Promise<string> {
  try {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      const length = Math.min(size, READ_TAIL_BYTES);
      const buffer = Buffer.alloc(length);
      await file.read(buffer, 0, length, size - length);
      return tail(buffer.toString('utf8'));
    } finally {
      await file.close();
    }
  } catch {
    return '';
  }
}

type Ended =
  | { how: 'spawn-error'; error: NodeJS.ErrnoException }
  | { how: 'exit'; code: number | null; signal: NodeJS.Signals | null }
  | { how: 'timed_out' }
  | { how: 'aborted' };

/** The first of: the child's exit (or failure to start), the deadline, the signal. */
function firstEnd(child: ChildProcess, timeoutMs: number, signal?: AbortSignal): Promise<Ended> {
  return new Promise<Ended>((resolve) => {
    const done = (ended: Ended) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(ended);
    };
    const onAbort = () => done({ how: 'aborted' });
    // Not unref'd: in healctl this timer may be all that keeps the process alive until the deadline.
    const timer = setTimeout(() => done({ how: 'timed_out' }), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    child.once('exit', (code, sig) => done({ how: 'exit', code, signal: sig }));
    child.on('error', (error: NodeJS.ErrnoException) => {
      // Only a failure to start ends the run; after a start, 'exit' will follow.
      if (child.pid === undefined) done({ how: 'spawn-error', error });
    });
  });
}

/**
 * Run the restart command (an argument array, never through a shell) in a process group of its own, under
 * a timeout that bounds the whole group: at the deadline, or on cancellation, the group gets SIGTERM, then
 * SIGKILL after {@link RESTART_KILL_GRACE_MS}. Resolves on the command's exit 0 with its output's last
 * lines (whatever it left running in the background stays running); rejects with
 * {@link RestartCommandError}, or with the signal's reason when cancelled.
 *
 * The command is spawned before this returns (the caller's crash point "the command is running" relies on
 * it).
 */
export function runRestartCommand(
  command: readonly [string, ...string[]],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ output: string; ms: number }> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  const [file, ...args] = command;
  const shown = JSON.stringify(command);
  const started = performance.now();

  // Set up and spawn synchronously; everything after is asynchronous.
  let dir: string;
  let child: ChildProcess;
  try {
    dir = mkdtempSync(join(tmpdir(), 'klr-restart-'));
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  const outputPath = join(dir, 'output');
  try {
    const fd = openSync(outputPath, 'w', 0o600);
    try {
      child = spawn(file, args, { detached: true, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd); // the child has its own copy
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }

  const run = async (): Promise<{ output: string; ms: number }> => {
    const ended = await firstEnd(child, timeoutMs, signal);
    let stopped: Awaited<ReturnType<typeof endGroup>> | null = null;
    if ((ended.how === 'timed_out' || ended.how === 'aborted') && child.pid !== undefined) {
      stopped = await endGroup(child.pid);
    }
    const output = await readTail(outputPath);
    const detail = output ? `: ${output}` : '';

    switch (ended.how) {
      case 'exit':
        if (ended.code === 0) return { output, ms: Math.round(performance.now() - started) };
        throw new RestartCommandError(
          `restart command ${shown} ${ended.code !== null ? `exited ${ended.code}` : `was killed (${ended.signal ?? 'signal'})`}${detail}`,
          'failed',
        );
      case 'spawn-error': {
        const code = ended.error.code;
        if (code === 'ENOENT' || code === 'EACCES') {
          throw new RestartCommandError(
            `restart command ${shown} cannot be run: ${file} ${code === 'ENOENT' ? 'not found' : 'is not executable'} (KLR_SERVICE_RESTART_CMD)`,
            'not_found',
          );
        }
        throw new RestartCommandError(
          `restart command ${shown} could not be started: ${ended.error.message}`,
          'failed',
        );
      }
      case 'aborted':
        throw abortReason(signal ?? AbortSignal.abort());
      case 'timed_out': {
        const how =
          stopped === 'terminated'
            ? 'its process group was stopped with SIGTERM'
            : stopped === 'killed'
              ? `its process group was stopped with SIGTERM, then SIGKILL after ${RESTART_KILL_GRACE_MS} ms`
              : `its process group got SIGTERM, then SIGKILL after ${RESTART_KILL_GRACE_MS} ms, and was still not gone ${AFTER_KILL_WAIT_MS} ms later`;
        throw new RestartCommandError(
          `restart command ${shown} did not finish within ${timeoutMs} ms (KLR_SERVICE_RESTART_TIMEOUT); ${how}${detail}`,
          'timed_out',
        );
      }
    }
  };

  return run().finally(() => rm(dir, { recursive: true, force: true }).catch(() => undefined));
}
