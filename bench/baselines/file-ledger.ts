// The original design's symptom ledger, kept as the baseline that kloros-healing's workflows replace:
// one JSON line per symptom appended to a per-day file (<dir>/<host>/<kind>/YYYY-MM-DD.jsonl), and the
// rolling 24 h count taken by reading the day files that can hold the last 24 h (today and yesterday).
//
// Choices made so the comparison is fair: every append is fsynced (a symptom acknowledged by the
// workflow is durable in Temporal's store; without fsync the ledger could lose the last ones in a crash —
// `fsync: false` is there to show what that costs), and the count honours idempotency ids like the
// workflow does (a redelivered id counts once). Writers for one (host, kind) are serialised in this
// process, as the original's single observer process would be.
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const DAY_MS = 24 * 3600_000;

export interface LedgerSymptom {
  kind: string;
  id?: string;
  /** Epoch ms; omitted = now. */
  at?: number;
  details?: Record<string, unknown>;
}

export interface FileLedgerOptions {
  dir: string;
  /** fsync each append before answering (default true). */
  fsync?: boolean;
}

const dayFile = (ms: number) => `${new Date(ms).toISOString().slice(0, 10)}.jsonl`;

export class FileLedger {
  private readonly dir: string;
  private readonly fsync: boolean;
  /** One chain per (host, kind) file set: appends and counts of one ledger never interleave. */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(opts: FileLedgerOptions) {
    this.dir = opts.dir;
    this.fsync = opts.fsync ?? true;
  }

  /** Appends the symptom and answers the 24 h count after it, as recordSymptom answers count24h. */
  record(host: string, symptom: LedgerSymptom): Promise<{ count24h: number }> {
    const key = `${host}\u0000${symptom.kind}`;
    const run = (this.chains.get(key) ?? Promise.resolve()).then(() => this.recordNow(host, symptom));
    this.chains.set(
      key,
      run.catch(() => undefined),
    );
    return run;
  }

  private async recordNow(host: string, symptom: LedgerSymptom): Promise<{ count24h: number }> {
    const now = Date.now();
    const at = symptom.at ?? now;
    const dir = join(this.dir, host, symptom.kind);
    await mkdir(dir, { recursive: true });
    const line = `${JSON.stringify({ at, id: symptom.id, kind: symptom.kind, details: symptom.details })}\n`;
    const handle = await open(join(dir, dayFile(at)), 'a');
    try {
      await handle.write(line);
      if (this.fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    return { count24h: await this.count24h(host, symptom.kind, now) };
  }

  /** Symptoms with event time in (now − 24 h, now], each id once, read from the day files. */
  async count24h(host: string, kind: string, now = Date.now()): Promise<number> {
    const dir = join(this.dir, host, kind);
    const horizon = now - DAY_MS;
    const seen = new Set<string>();
    let count = 0;
    for (const day of new Set([dayFile(horizon), dayFile(now)])) {
      let text: string;
      try {
        text = await readFile(join(dir, day), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const line of text.split('\n')) {
        if (!line) continue;
        const entry = JSON.parse(line) as { at: number; id?: string };
        if (entry.at <= horizon || entry.at > now) continue;
        if (entry.id !== undefined) {
          if (seen.has(entry.id)) continue;
          seen.add(entry.id);
        }
        count++;
      }
    }
    return count;
  }
}
