// How long a restart of the service takes (restart → healthy), as the budget check needs it before a
// canary: the median of what this host measured for its recent promotions, else a configured guess.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BudgetReport } from './types.js';

const RECENT = 10;

/** A service as the audit log names it: records from before 0.5 name none and belong to the legacy one. */
export interface AuditedService {
  name: string;
  legacy: boolean;
}

/**
 * The median restart of this host's last promotions (its audit log), and how many; null: none yet. With
 * a service, only that service's promotions count (another model's restart says little about this one's).
 */
export async function measuredRestart(
  auditDir: string,
  host: string,
  service: AuditedService | null = null,
): Promise<{ medianMs: number; promotions: number } | null> {
  let text: string;
  try {
    text = await readFile(join(auditDir, `budget-${host}.jsonl`), 'utf8');
  } catch {
    return null;
  }
  const measured = text
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      try {
        const report = JSON.parse(line) as BudgetReport;
        // A promotion is exactly one restart; a restore is two, so it says less about one restart.
        const named = report.event.service;
        const ours = service === null || named === service.name || (named === undefined && service.legacy);
        return ours && report.event.outcome === 'promoted' && report.event.downtimeMs > 0
          ? [report.event.downtimeMs]
          : [];
      } catch {
        return [];
      }
    })
    .slice(-RECENT)
    .sort((a, b) => a - b);
  if (measured.length === 0) return null;
  return { medianMs: measured[Math.floor(measured.length / 2)] as number, promotions: measured.length };
}

export function createRestartEstimate(opts: {
  auditDir: string;
  host: string;
  service?: AuditedService;
  fallbackMs: number;
}): () => Promise<number> {
  return async () =>
    (await measuredRestart(opts.auditDir, opts.host, opts.service ?? null))?.medianMs ?? opts.fallbackMs;
}
