// Keeps a fresh snapshot of this host's metrics: reads the workflows' state every few seconds (and on a
// scrape when the snapshot is older than a second), folds their carried totals into the counter ledger
// (stored under <dataDir>/metrics so the counters continue across worker restarts), and computes the
// gauges against the real clock.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../config/logger.js';
import type { HealingPolicy } from '../domain/policy.js';
import type { HealingStateView } from '../workflows/healing-messages.js';
import type { HostStateView } from '../workflows/host-coordinator-messages.js';
import { METRICS } from './catalog.js';
import {
  type CounterLedgerState,
  emptyCounterLedger,
  knownKinds,
  ledgerTotals,
  observeSource,
  parseCounterLedger,
} from './counter-ledger.js';
import {
  type Sample,
  gaugeSamples,
  healingCounts,
  hostCounts,
  seriesKey,
  zeroCounterSamples,
} from './derive.js';
import type { WorkflowStateReader } from './workflow-state.js';

export interface MetricsSnapshot {
  /** Epoch ms of the reading it was computed from; 0 before the first one. */
  at: number;
  counters: Sample[];
  gauges: Sample[];
}

export interface CollectorOptions {
  reader: WorkflowStateReader;
  policy: HealingPolicy;
  /** Where the counter ledger is stored (JSON). */
  ledgerPath: string;
  logger: Logger;
  /** Background refresh period, ms. */
  intervalMs?: number;
  /** A scrape serves a snapshot at most this old without reading again, ms. */
  maxAgeMs?: number;
  now?: () => number;
}

export class MetricsCollector {
  private ledger: CounterLedgerState = emptyCounterLedger();
  private readonly lastViews = new Map<string, HealingStateView>();
  private lastHost: HostStateView | null = null;
  private snapshot: MetricsSnapshot = { at: 0, counters: [], gauges: [] };
  private inFlight: Promise<MetricsSnapshot> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
  private readonly now: () => number;

  constructor(private readonly options: CollectorOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Load the stored ledger and start refreshing in the background. */
  async start(): Promise<void> {
    this.ledger = await this.loadLedger();
    this.snapshot = this.compute(this.now(), 0);
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.intervalMs ?? 5_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The snapshot for a scrape: refreshed first when older than maxAgeMs; the last one if reading fails. */
  async current(): Promise<MetricsSnapshot> {
    if (this.now() - this.snapshot.at <= (this.options.maxAgeMs ?? 1_000)) return this.snapshot;
    return this.refresh();
  }

  /** Read the workflows now (one reading at a time; callers share it). */
  refresh(): Promise<MetricsSnapshot> {
    this.inFlight ??= this.readOnce().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async readOnce(): Promise<MetricsSnapshot> {
    const { reader, logger } = this.options;
    try {
      const reading = await reader.read();
      let ledger = this.ledger;
      let changed = false;
      for (const view of reading.healing) {
        this.lastViews.set(view.workflowId, view);
        const r = observeSource(ledger, healingCounts(view));
        ledger = r.state;
        changed ||= r.changed;
      }
      if (reading.host) {
        const r = observeSource(ledger, hostCounts(reading.host));
        ledger = r.state;
        changed ||= r.changed;
      }
      // Workflows that no longer run are forgotten for the gauges (their counts stay in the ledger);
      // one that runs but did not answer keeps its last view.
      const running = new Set([...reading.healing.map((v) => v.workflowId), ...reading.unanswered]);
      for (const id of this.lastViews.keys()) if (!running.has(id)) this.lastViews.delete(id);
      this.lastHost = reading.host ?? this.lastHost;
      if (changed) await this.storeLedger(ledger);
      this.ledger = ledger;
      if (this.failing) logger.info('metrics: reading the workflow state works again');
      this.failing = false;
      this.snapshot = this.compute(this.now(), this.now());
    } catch (err) {
      // Counters keep their last values; the gauges their last state, recomputed against the clock.
      if (!this.failing)
        logger.warn({ err }, 'metrics: cannot read the workflow state; serving the last values');
      this.failing = true;
      this.snapshot = this.compute(this.now(), this.snapshot.at);
    }
    return this.snapshot;
  }

  private compute(now: number, at: number): MetricsSnapshot {
    const kinds = knownKinds(this.ledger, METRICS.symptoms.name);
    const counters = new Map<string, Sample>();
    for (const s of [...zeroCounterSamples(kinds), ...ledgerTotals(this.ledger)])
      counters.set(seriesKey(s.name, s.labels), s);
    const gauges = gaugeSamples({
      healing: [...this.lastViews.values()],
      knownKinds: kinds,
      host: this.lastHost,
      policy: this.options.policy,
      now,
    });
    return { at, counters: [...counters.values()], gauges };
  }

  private async loadLedger(): Promise<CounterLedgerState> {
    let text: string;
    try {
      text = await readFile(this.options.ledgerPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyCounterLedger();
      throw err;
    }
    try {
      return parseCounterLedger(text);
    } catch (err) {
      // Starting from the workflows' own totals loses only what terminated workflows had counted.
      this.options.logger.warn(
        { path: this.options.ledgerPath, err },
        'metrics: the stored counter ledger is unreadable; starting a new one from the workflows',
      );
      await rename(this.options.ledgerPath, `${this.options.ledgerPath}.unreadable-${Date.now()}`);
      return emptyCounterLedger();
    }
  }

  /** Write-then-rename: a crash leaves the old or the new ledger, never half of one. */
  private async storeLedger(ledger: CounterLedgerState): Promise<void> {
    const path = this.options.ledgerPath;
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(ledger), { mode: 0o640 });
    await rename(tmp, path);
  }
}
