// Shared plumbing for building cached tools: an exclusive lock file so concurrent callers build
// once, and build-into-temp-then-rename so a crash never leaves a half-installed tool behind.
import { constants } from 'node:fs';
import { access, mkdir, open, readFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, delimiter, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { isProcessAlive } from '../system/process-alive.js';

export type Log = (msg: string) => void;

/** True when `path` is a regular file we may execute. */
export async function isExecutableFile(path: string): Promise<boolean> {
  try {
    if (!(await stat(path)).isFile()) return false;
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** First executable `name` on `$PATH`, like `command -v`, without spawning a shell. */
export async function findOnPath(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

async function tryCreateLock(lockPath: string, token: string): Promise<boolean> {
  try {
    const handle = await open(lockPath, 'wx');
    await handle.writeFile(token);
    await handle.close();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** Removes the lock when its holder died; returns false while a live process holds it. */
async function breakIfStale(lockPath: string): Promise<boolean> {
  let content: string;
  try {
    content = await readFile(lockPath, 'utf8');
  } catch {
    return true; // released between our open() and readFile()
  }
  const pid = Number.parseInt(content, 10);
  if (Number.isInteger(pid) && pid > 0 && isProcessAlive(pid)) return false;
  if (!Number.isInteger(pid)) {
    // A holder may have created the file but not written its pid yet: give it a moment.
    const ageMs = Date.now() - (await stat(lockPath).catch(() => ({ mtimeMs: 0 }))).mtimeMs;
    if (ageMs < 5_000) return false;
  }
  // Re-read right before unlinking so we don't remove a lock a third process just took.
  const again = await readFile(lockPath, 'utf8').catch(() => undefined);
  if (again === content) await unlink(lockPath).catch(() => undefined);
  return true;
}

/**
 * Runs `fn` while holding `lockPath` (created with O_EXCL, containing our pid). Waits for a live
 * holder and takes over the lock of a dead one.
 */
export async function withLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  opts: { log?: Log; what: string; timeoutMs?: number },
): Promise<T> {
  await mkdir(dirname(lockPath), { recursive: true });
  const token = `${process.pid}\n${Date.now()}-${Math.random()}\n`;
  const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  let told = false;
  while (!(await tryCreateLock(lockPath, token))) {
    if (await breakIfStale(lockPath)) continue;
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out waiting for another process to finish ${opts.what} (lock ${lockPath}). ` +
          `If no such process is running, delete the lock file and retry.`,
      );
    }
    if (!told) opts.log?.(`waiting for another process that is ${opts.what} (lock ${lockPath})`);
    told = true;
    await sleep(500);
  }
  try {
    return await fn();
  } finally {
    // Only remove our own lock (a stale-breaker could, in theory, have replaced it).
    if ((await readFile(lockPath, 'utf8').catch(() => undefined)) === token) await unlink(lockPath);
  }
}

/**
 * Builds into a fresh sibling temp dir, then renames it to `finalDir`. Call while holding the
 * lock: it also clears leftovers (temp dirs of crashed builds, a `finalDir` missing its tool).
 */
export async function installAtomically(
  finalDir: string,
  build: (tmpDir: string) => Promise<void>,
): Promise<void> {
  const parent = dirname(finalDir);
  const prefix = `${basename(finalDir)}.tmp-`;
  await mkdir(parent, { recursive: true });
  for (const entry of await readdir(parent)) {
    if (entry.startsWith(prefix)) await rm(join(parent, entry), { recursive: true, force: true });
  }
  const tmpDir = join(parent, `${prefix}${process.pid}-${Date.now()}`);
  await mkdir(tmpDir);
  try {
    await build(tmpDir);
    await rm(finalDir, { recursive: true, force: true });
    await rename(tmpDir, finalDir);
  } catch (err) {
    await rm(tmpDir, { recursive: true, force: true });
    throw err;
  }
}

/** Keeps the last `max` lines of a stream of output, for error messages. */
/**
 * The first lines and the last ones of a process's output: a Go panic says what went wrong first and
 * then prints a stack longer than any tail (a dev server's "bind: address already in use" was lost so).
 */
export class LineTail {
  private readonly head: string[] = [];
  private readonly lines: string[] = [];
  private dropped = 0;
  constructor(
    private readonly max = 40,
    private readonly keepFirst = 10,
  ) {}
  push(line: string): void {
    if (this.head.length < this.keepFirst) {
      this.head.push(line);
      return;
    }
    this.lines.push(line);
    if (this.lines.length > this.max) {
      this.lines.shift();
      this.dropped++;
    }
  }
  toString(): string {
    const gap = this.dropped > 0 ? [`… (${this.dropped} lines) …`] : [];
    return [...this.head, ...gap, ...this.lines].join('\n');
  }
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/**
 * Runs a command (argument array, no shell), forwarding each output line to `log` and keeping a
 * tail for the error message when it fails.
 */
export async function runStreaming(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; log?: Log; prefix: string },
): Promise<void> {
  const tail = new LineTail();
  const subprocess = execa(file, args, {
    env: opts.env,
    cwd: opts.cwd,
    all: true,
    buffer: false,
    stdin: 'ignore',
    reject: false,
  });
  for await (const raw of subprocess.iterable({ from: 'all' })) {
    const line = stripAnsi(raw).trimEnd();
    if (!line) continue;
    tail.push(line);
    opts.log?.(`${opts.prefix}${line}`);
  }
  const result = await subprocess;
  if (result.failed) {
    const why = result.exitCode !== undefined ? `exit code ${result.exitCode}` : result.shortMessage;
    throw new Error(`\`${[file, ...args].join(' ')}\` failed (${why}). Last output:\n${tail.toString()}`);
  }
}
