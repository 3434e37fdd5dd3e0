// Which process on a GPU is the vLLM service. nvidia-smi names a process by its executable, so vLLM often
// shows as "python3" (or "/opt/conda/bin/python"); newer releases title theirs "VLLM::EngineCore" or
// "VLLM::Worker_TP0". Its command line says more (`vllm serve …`, `python -m vllm.entrypoints…`), and an
// engine core or worker started with multiprocessing's spawn has a parent that is `vllm serve`. Without
// this, a service caught mid-start (its weights loaded, no KV cache yet) matches neither its name nor its
// budget and its memory would be taken for another process's.
import type { GpuProcess } from '../domain/vram-snapshot.js';
import { readCommandLine, readProcStat } from './proc-info.js';

const VLLM = /vllm/i;
/** How far up the parent chain to look: server → engine core → workers, and a launcher or two. */
const MAX_ANCESTORS = 4;

/** Whether the GPU process is vLLM: by its name, else by its or an ancestor's command line. */
export function isVllmProcess(p: GpuProcess, procRoot = '/proc'): boolean {
  if (VLLM.test(p.processName ?? '')) return true;
  let pid = p.pid;
  for (let depth = 0; depth <= MAX_ANCESTORS && pid > 1; depth++) {
    const command = readCommandLine(pid, procRoot);
    if (command === null) return false; // gone, or in another PID namespace (a container)
    if (VLLM.test(command)) return true;
    const stat = readProcStat(pid, procRoot);
    if (stat === null) return false;
    pid = stat.ppid;
  }
  return false;
}

/**
 * Whether the GPU process belongs to one service of several on the host: its command line or an
 * ancestor's names the service's config file (`vllm serve --config FILE`) or its port (`--port N`). Every
 * service on the host is vLLM, so "is it vLLM" cannot tell them apart; in a container whose command line
 * names another path, the port still does (docs/deployment.md).
 */
export function isProcessOfService(
  p: GpuProcess,
  service: { configPath: string; port: number | null },
  procRoot = '/proc',
): boolean {
  const marks = [service.configPath];
  const port = service.port === null ? null : new RegExp(`(?:^|\\s)--port[=\\s]${service.port}(?:\\s|$)`);
  let pid = p.pid;
  for (let depth = 0; depth <= MAX_ANCESTORS && pid > 1; depth++) {
    const command = readCommandLine(pid, procRoot);
    if (command === null) return false;
    if (VLLM.test(command) && (marks.some((m) => command.split(' ').includes(m)) || port?.test(command)))
      return true;
    const stat = readProcStat(pid, procRoot);
    if (stat === null) return false;
    pid = stat.ppid;
  }
  return false;
}
