// How the workflows tell their worker what its metrics need, at the event: a Temporal sink (a one-way
// call out of the workflow sandbox). Each report carries the workflow's durable totals, not increments,
// so a report sent twice (a retried workflow task) or never (a task replayed after a worker restart,
// where sinks are not called) leaves the counters right: the worker's ledger takes totals as they are,
// and reads every workflow's state once when it starts (src/metrics/collector.ts).
import { type Sinks, proxySinks } from '@temporalio/workflow';
import type { HealingStateView } from './healing-messages.js';
import type { HostStateView } from './host-coordinator-messages.js';

/** What the worker's metrics use of a HealingWorkflow's state. */
export type HealingMetricsReport = Pick<
  HealingStateView,
  'workflowId' | 'firstRunId' | 'kind' | 'armed' | 'totals' | 'counters' | 'lastCanary'
> & {
  /**
   * The service's name (HealingStateView.service); absent in reports of 0.4 runs and null while a legacy
   * workflow has not learnt its name: the worker labels those with its legacy service's name.
   */
  service?: string | null;
  /** The workflow has ended: its gauges go, its counts stay. */
  ended?: boolean;
};

/** What the worker's metrics use of the host coordinator's state. */
export type HostMetricsReport = Pick<
  HostStateView,
  'workflowId' | 'firstRunId' | 'counters' | 'ledger' | 'cooldownUntil' | 'restoreFailure' | 'policy'
>;

export interface MetricsSinks extends Sinks {
  metrics: {
    healing(report: HealingMetricsReport): void;
    host(report: HostMetricsReport): void;
  };
}

const { metrics } = proxySinks<MetricsSinks>();

/**
 * Sends a report when it differs from the last one this run sent. Called wherever the state may have
 * changed (every decision, every published phase); the comparison keeps a busy workflow from sending the
 * same figures on every task.
 */
export class MetricsReporter<R> {
  private last = '';

  constructor(private readonly send: (report: R) => void) {}

  report(report: R): void {
    const key = JSON.stringify(report);
    if (key === this.last) return;
    this.last = key;
    this.send(report);
  }
}

export const healingReporter = (): MetricsReporter<HealingMetricsReport> =>
  new MetricsReporter((r) => metrics.healing(r));

export const hostReporter = (): MetricsReporter<HostMetricsReport> =>
  new MetricsReporter((r) => metrics.host(r));
