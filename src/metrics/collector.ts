// This host's metrics, kept in the worker's memory from what its workflows report at the event
// (src/workflows/metrics-sink.ts). Nothing lists or queries workflows on a timer:
//  - counters: each report carries a workflow's durable totals, folded into the counter ledger (stored
//    under <dataDir>/metrics, so the counters continue across worker restarts);
//  - gauges: the last report of each running workflow, computed against the real clock on a scrape;
//  - once at start, the running workflows are read (list + query), because a workflow replayed after a
//    restart does not report (sinks are not called during replay) and an idle one may not run for hours;
//    that reading is retried until it succeeds, then never again;
//  - when a scrape finds no contact with Temporal for `contactCheckMs`, one cheap call checks that it is
//    still reachable, for the "last successful read" gauge behind the stale-figures alert;
//  - a workflow terminated from outside cannot report: a figure that raises an alert (an armed flag, a
//    latched restore failure) and was not reported for `recheckMs` costs one describe call on a scrape,
//    and is dropped when its workflow no longer runs. Figures that raise nothing are never rechecked.
// Series of a healing workflow carry its service (`service` label): the name its report gives, or for a
// report without one (a 0.4 run, a legacy workflow that has not learnt its name) `legacyServiceName`.
import { readFile, rename } from 'node:fs/promises';
import type { Logger } from '../config/logger.js';
import type { HealingPolicy } from '../domain/policy.js';
import { writeFileDurably } from '../system/durable-file.js';
import type { HealingMetricsReport, HostMetricsReport } from '../workflows/metrics-sink.js';
import { METRICS } from './catalog.js';
import {
  type CounterLedgerState,
  emptyCounterLedger,
  knownServiceKinds,
  knownServices,
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
  serviceLabel,
  zeroCounterSamples,
} from './derive.js';
import type { WorkflowStateReader } from './workflow-state.js';

export interface MetricsSnapshot {
  counters: Sample[];
  gauges: Sample[];
}

export interface CollectorOptions {
  /** The one reading at start (list + query the host's running workflows). */
  reader: WorkflowStateReader;
  /** A cheap call that succeeds while Temporal is reachable. */
  checkContact: () => Promise<void>;
  /** Whether the workflow of that id still runs (one describe call). */
  stillRunning: (workflowId: string) => Promise<boolean>;
  /** An alerting figure not reported for this long is rechecked on a scrape, ms (default 10 minutes). */
  recheckMs?: number;
  policy: HealingPolicy;
  /** Where the counter ledger is stored (JSON). */
  ledgerPath: string;
  logger: Logger;
  /** A scrape checks contact with Temporal when none was seen for this long, ms. */
  contactCheckMs?: number;
  /** First wait before the start reading is tried again, ms (doubling up to 5 minutes). */
  retryMs?: number;
  /**
   * The name of the worker's legacy service (the services file's `legacyIds: true` entry, or the
   * KLR_SERVICE_* shortcut's one service): the `service` label of reports that name none, and of the
   * counts a 0.4 ledger holds. null (the default): such series get service="" (no label in Prometheus).
   */
  legacyServiceName?: string | null;
  /** The host's services by name: their per-service counters have a 0 series from the start (default none). */
  serviceNames?: readonly string[];
  now?: () => number;
}

const MAX_RETRY_MS = 5 * 60_000;
/** A burst of reports (a symptom storm) writes the ledger at most this often. */
const STORE_EVERY_MS = 1_000;

export class MetricsCollector {
  private ledger: CounterLedgerState = emptyCounterLedger();
  private readonly views = new Map<string, HealingMetricsReport>();
  private host: HostMetricsReport | null = null;
  /** Workflows that reported since the start reading began: their report is newer than its answer. */
  private readonly reportedSinceStart = new Set<string>();
  private lastContact: number;
  private contactCheck: Promise<void> | null = null;
  /** When each workflow's figures were last reported or confirmed (epoch ms). */
  private readonly heard = new Map<string, number>();
  private recheck: Promise<void> | null = null;
  private storing: Promise<void> = Promise.resolve();
  private storeScheduled = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private readonly legacyService: string | null;

  constructor(private readonly options: CollectorOptions) {
    this.now = options.now ?? Date.now;
    this.legacyService = options.legacyServiceName ?? null;
    // The worker connected before the collector exists: that was the first contact.
    this.lastContact = this.now();
  }

  /** Load the stored ledger: before the worker runs, so that no report comes before it. */
  async load(): Promise<void> {
    this.ledger = await this.loadLedger();
  }

  /** Start the one reading of the running workflows: once the worker runs, as it answers their queries. */
  start(): void {
    this.readRunning(this.options.retryMs ?? 5_000);
  }

  /** Stop retrying; resolves once the last ledger write is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.storing;
  }

  /** A HealingWorkflow's report (its sink call). */
  onHealing(report: HealingMetricsReport): void {
    this.reportedSinceStart.add(report.workflowId);
    this.applyHealing(report);
  }

  /** The coordinator's report (its sink call). */
  onHost(report: HostMetricsReport): void {
    this.reportedSinceStart.add(report.workflowId);
    this.applyHost(report);
  }

  /** The values for a scrape: first rechecks stale alerting figures, and contact after a quiet spell. */
  async current(): Promise<MetricsSnapshot> {
    this.recheck ??= this.recheckAlerting().finally(() => {
      this.recheck = null;
    });
    await this.recheck;
    if (this.now() - this.lastContact >= (this.options.contactCheckMs ?? 5 * 60_000)) {
      this.contactCheck ??= this.options
        .checkContact()
        .then(
          () => this.contact(),
          (err: unknown) => this.options.logger.warn({ err }, 'metrics: Temporal cannot be reached'),
        )
        .finally(() => {
          this.contactCheck = null;
        });
      await this.contactCheck;
    }
    return this.snapshot();
  }

  /** Counters from the ledger, gauges from the last reports, against the clock now. */
  snapshot(): MetricsSnapshot {
    const serviceKinds = knownServiceKinds(this.ledger, METRICS.symptoms.name);
    const services = new Set([
      ...(this.options.serviceNames ?? []),
      ...(this.legacyService === null ? [] : [this.legacyService]),
      ...knownServices(this.ledger),
      ...[...this.views.values()].map((v) => serviceLabel(v, this.legacyService)),
    ]);
    // Before any service is known, the per-service counters still have a series (service="").
    if (services.size === 0) services.add('');
    const counters = new Map<string, Sample>();
    for (const s of [
      ...zeroCounterSamples({ services: [...services].sort(), serviceKinds }),
      ...ledgerTotals(this.ledger),
    ])
      counters.set(seriesKey(s.name, s.labels), s);
    const gauges = gaugeSamples({
      healing: [...this.views.values()],
      known: serviceKinds,
      legacyService: this.legacyService,
      host: this.host,
      policy: this.options.policy,
      now: this.now(),
      lastContact: this.lastContact,
    });
    return { counters: [...counters.values()], gauges };
  }

  /** One describe per alerting figure not heard of for `recheckMs`; its figures go if it no longer runs. */
  private async recheckAlerting(): Promise<void> {
    const now = this.now();
    const due = (id: string) => now - (this.heard.get(id) ?? 0) >= (this.options.recheckMs ?? 10 * 60_000);
    const ids = [...this.views.values()].filter((v) => v.armed).map((v) => v.workflowId);
    if (this.host?.restoreFailure) ids.push(this.host.workflowId);
    await Promise.all(
      ids.filter(due).map(async (id) => {
        this.heard.set(id, now); // one try per period, whatever the answer
        const figures = this.views.get(id) ?? this.host;
        try {
          const running = await this.options.stillRunning(id);
          this.contact();
          // A report that came in meanwhile (a new run started) is newer than the answer.
          if (running || (this.views.get(id) ?? this.host) !== figures) return;
          this.options.logger.info(
            { workflowId: id },
            'metrics: workflow no longer runs; its gauges are dropped',
          );
          if (this.host?.workflowId === id) this.host = null;
          this.views.delete(id);
          this.heard.delete(id);
        } catch (err) {
          this.options.logger.warn(
            { err, workflowId: id },
            'metrics: cannot check whether a workflow still runs',
          );
        }
      }),
    );
  }

  private applyHealing(report: HealingMetricsReport): void {
    this.contact();
    this.heard.set(report.workflowId, this.now());
    // A workflow that ended keeps its counts (in the ledger) but no longer has gauges.
    if (report.ended) {
      this.views.delete(report.workflowId);
      this.heard.delete(report.workflowId);
    } else this.views.set(report.workflowId, structuredClone(report));
    this.count(observeSource(this.ledger, healingCounts(report, this.legacyService)));
  }

  private applyHost(report: HostMetricsReport): void {
    this.heard.set(report.workflowId, this.now());
    this.contact();
    this.host = structuredClone(report);
    this.count(observeSource(this.ledger, hostCounts(report)));
  }

  private contact(): void {
    this.lastContact = Math.max(this.lastContact, this.now());
  }

  private count(result: { state: CounterLedgerState; changed: boolean }): void {
    this.ledger = result.state;
    if (result.changed) this.scheduleStore();
  }

  /**
   * The reading at start, retried (doubling the wait) until Temporal answers and every running
   * workflow has answered or reported; a workflow that reported meanwhile keeps its newer report.
   */
  private readRunning(waitMs: number): void {
    if (this.stopped) return;
    const { reader, logger } = this.options;
    const again = () => {
      this.retryTimer = setTimeout(() => this.readRunning(Math.min(waitMs * 2, MAX_RETRY_MS)), waitMs);
      this.retryTimer.unref();
    };
    reader.read().then(
      (reading) => {
        if (this.stopped) return;
        for (const view of reading.healing)
          if (!this.reportedSinceStart.has(view.workflowId)) this.applyHealing(view);
        if (reading.host && !this.reportedSinceStart.has(reading.host.workflowId))
          this.applyHost(reading.host);
        this.contact();
        const missing = reading.unanswered.filter((id) => !this.reportedSinceStart.has(id));
        if (missing.length > 0) {
          logger.warn(
            { workflows: missing, retryInSeconds: waitMs / 1000 },
            'metrics: running workflows did not answer the state query; their figures are missing until they answer or report',
          );
          again();
        } else {
          logger.info({ workflows: reading.healing.length }, 'metrics: read the running workflows once');
        }
      },
      (err: unknown) => {
        if (this.stopped) return;
        logger.warn(
          { err, retryInSeconds: waitMs / 1000 },
          'metrics: cannot read the running workflows; serving the stored counters',
        );
        again();
      },
    );
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
      return parseCounterLedger(text, this.legacyService);
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

  /** One write at a time, at most one a second; the last state is always written. */
  private scheduleStore(): void {
    if (this.storeScheduled) return;
    this.storeScheduled = true;
    this.storing = this.storing
      .then(() => new Promise((resolve) => setTimeout(resolve, this.stopped ? 0 : STORE_EVERY_MS)))
      .then(() => {
        this.storeScheduled = false;
        return writeFileDurably(this.options.ledgerPath, JSON.stringify(this.ledger), { mode: 0o640 });
      })
      .catch((err: unknown) => {
        this.storeScheduled = false;
        this.options.logger.warn({ err }, 'metrics: cannot store the counter ledger; counters may restart');
      });
  }
}
