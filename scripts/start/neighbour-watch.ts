// The demo's proof that healing one service leaves its neighbour alone: the demo itself sends the neighbour
// a real completion request every few seconds, counts the answers, and compares the neighbour's process (its
// supervisor's service.pid) and config file with what they were at the start.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DemoService } from './demo-service.js';

export interface NeighbourReport {
  name: string;
  served: number;
  failed: number;
  pidBefore: number | null;
  pidNow: number | null;
  configUnchanged: boolean;
}

/** Whether the report shows nothing touched: every request served, the same process, the same config. */
export function untouched(r: NeighbourReport): boolean {
  return r.failed === 0 && r.pidBefore !== null && r.pidNow === r.pidBefore && r.configUnchanged;
}

/** `qwen untouched: served 40 requests, 0 failed, same process (pid 123), config unchanged`, or what differs. */
export function neighbourLine(r: NeighbourReport): string {
  const process =
    r.pidBefore !== null && r.pidNow === r.pidBefore
      ? `same process (pid ${r.pidBefore})`
      : `process changed (pid ${r.pidBefore ?? 'none'} at the start, ${r.pidNow ?? 'none'} now)`;
  return (
    `${r.name} ${untouched(r) ? 'untouched' : 'DISTURBED'}: served ${r.served} requests, ${r.failed} failed, ` +
    `${process}, config ${r.configUnchanged ? 'unchanged' : 'changed'}`
  );
}

async function readPid(stateDir: string): Promise<number | null> {
  try {
    const pid = Number((await readFile(join(stateDir, 'service.pid'), 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** One completion request; true when the service answered 200 with a completion. */
async function completes(service: DemoService, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(`${service.baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: service.plan.servedModel,
        prompt: 'The capital of France is',
        max_tokens: 8,
      }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await res.json().catch(() => null)) as { choices?: unknown[] } | null;
    return res.status === 200 && Array.isArray(body?.choices) && body.choices.length > 0;
  } catch {
    return false;
  }
}

/** Probes `service` every `intervalMs` (one request at a time) until stopped. */
export async function watchNeighbour(
  service: DemoService,
  opts: { intervalMs?: number; timeoutMs?: number } = {},
): Promise<{ report(): Promise<NeighbourReport>; stop(): void }> {
  const pidBefore = await readPid(service.stateDir);
  let served = 0;
  let failed = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const round = async () => {
    if (stopped) return;
    if (await completes(service, opts.timeoutMs ?? 15_000)) served++;
    else if (!stopped) failed++;
    if (!stopped) timer = setTimeout(() => void round(), opts.intervalMs ?? 2_000);
  };
  void round();
  return {
    async report() {
      const [pidNow, config] = await Promise.all([
        readPid(service.stateDir),
        readFile(service.configPath, 'utf8').catch(() => null),
      ]);
      return {
        name: service.name,
        served,
        failed,
        pidBefore,
        pidNow,
        configUnchanged: config === service.configText,
      };
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
