// Process-group checks for the restart-command tests (Linux: read from /proc). A restart command that
// writes its `$$` into a file tells the test its pid, which is its process group's id (it runs detached).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import assert from 'node:assert/strict';
import { readCommandLine, readProcStat } from '../../src/service/proc-info.js';

/** Live (not zombie) processes whose process group is `pgid`, each as "pid state cmdline". */
export function groupMembers(pgid: number): string[] {
  const out: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcStat(name);
    if (stat === null || stat.pgrp !== pgid || stat.state === 'Z') continue; // gone, elsewhere or a zombie
    out.push(`${name} ${stat.state} ${readCommandLine(Number(name)) ?? ''}`);
  }
  return out;
}

async function poll<T>(
  what: string,
  probe: () => T | null | undefined | false,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The pids written into `file`, one a line, once there are at least `count`. */
export async function pidsFrom(file: string, count = 1, timeoutMs = 10_000): Promise<[number, ...number[]]> {
  return poll(
    `${count} pid(s) in ${file}`,
    () => {
      const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      const pids = text
        .split('\n')
        .filter((l) => /^\d+$/.test(l.trim()))
        .map(Number);
      const [first, ...rest] = pids;
      return first !== undefined && pids.length >= count ? ([first, ...rest] as [number, ...number[]]) : null;
    },
    timeoutMs,
  );
}

/** Waits until the group has `count` live members whose command line matches `re`. */
export async function waitForMembers(pgid: number, re: RegExp, count: number, timeoutMs = 5_000) {
  return poll(
    `${count} process(es) matching ${String(re)} in group ${pgid}`,
    () => groupMembers(pgid).filter((m) => re.test(m.split(' ').slice(2).join(' '))).length >= count,
    timeoutMs,
  );
}

/** Nothing of the group is alive (a brief poll: the kernel may take a moment). */
export async function assertGroupGone(pgid: number, withinMs = 1_000): Promise<void> {
  const gone = await poll(`group ${pgid} to be empty`, () => groupMembers(pgid).length === 0, withinMs).catch(
    () => false,
  );
  assert.ok(gone, `processes of group ${pgid} still alive: ${groupMembers(pgid).join('; ')}`);
}

/** SIGKILL to a pid (or, negative, a group) that a failed test may have left; no error when it is gone. */
export function killQuietly(pid: number): void {
  if (Math.abs(pid) <= 1) return; // 0, -0, ±1 would hit this test's own group or every process
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}
