// What Linux's /proc says about a process: its state, parent and group (from `stat`) and its command line.
// Every reader returns null when the process is gone, is not visible (another PID namespace) or there is
// no /proc (not Linux): callers fall back to what they knew without it.
import { readFileSync } from 'node:fs';

export interface ProcStat {
  /** R, S, D, Z (zombie), X (dead), … */
  state: string;
  ppid: number;
  pgrp: number;
}

/** `/proc/<pid>/stat`, parsed; `procRoot` is for tests. */
export function readProcStat(pid: number | string, procRoot = '/proc'): ProcStat | null {
  let stat: string;
  try {
    stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
  } catch {
    return null; // exited meanwhile, or not a process
  }
  // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const [state, ppid, pgrp] = stat.slice(close + 2).split(' ', 3);
  if (state === undefined || !/^\d+$/.test(ppid ?? '') || !/^\d+$/.test(pgrp ?? '')) return null;
  return { state, ppid: Number(ppid), pgrp: Number(pgrp) };
}

/** `/proc/<pid>/cmdline` with its NUL separators as spaces ('' for a kernel thread). */
export function readCommandLine(pid: number, procRoot = '/proc'): string | null {
  try {
    return readFileSync(`${procRoot}/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return null;
  }
}
