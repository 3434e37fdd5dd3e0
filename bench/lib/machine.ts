// What a benchmark ran on: figures mean little without the machine, its load and the commit measured.
import { cpus, freemem, loadavg, release, totalmem, type as osType } from 'node:os';
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';

export interface MachineInfo {
  date: string;
  commit: string;
  /** Whether the working tree had uncommitted changes to tracked files when the bench ran. */
  dirty: boolean;
  cpuModel: string;
  cores: number;
  ramGiB: number;
  freeRamGiB: number;
  loadAverage: [number, number, number];
  node: string;
  os: string;
  temporalSdk: string;
  /** Free text from KLR_BENCH_NOTE, e.g. "shared machine, busy". */
  note: string;
}

async function git(args: string[]): Promise<string> {
  const r = await execa('git', args, { reject: false });
  return r.exitCode === 0 ? r.stdout.trim() : 'unknown';
}

async function osName(): Promise<string> {
  try {
    const text = await readFile('/etc/os-release', 'utf8');
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1];
    if (pretty) return `${pretty}, ${osType()} ${release()}`;
  } catch {
    // Not Linux, or no os-release: the kernel's name is enough.
  }
  return `${osType()} ${release()}`;
}

async function sdkVersion(): Promise<string> {
  try {
    const url = new URL('../../node_modules/@temporalio/worker/package.json', import.meta.url);
    return (JSON.parse(await readFile(url, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpu = cpus();
  const [l1, l5, l15] = loadavg();
  return {
    date: new Date().toISOString(),
    commit: await git(['rev-parse', '--short=12', 'HEAD']),
    dirty: (await git(['status', '--porcelain', '--untracked-files=no'])) !== '',
    cpuModel: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    ramGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    freeRamGiB: Math.round((freemem() / 1024 ** 3) * 10) / 10,
    loadAverage: [l1 ?? 0, l5 ?? 0, l15 ?? 0].map((x) => Math.round(x * 100) / 100) as [
      number,
      number,
      number,
    ],
    node: process.version,
    os: await osName(),
    temporalSdk: await sdkVersion(),
    note: process.env.KLR_BENCH_NOTE ?? '',
  };
}

/** Resident set size of a process in MiB, from /proc/<pid>/status (Linux); null where unreadable. */
export async function rssMib(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? null : Math.round((Number(kb) / 1024) * 10) / 10;
  } catch {
    return null;
  }
}
