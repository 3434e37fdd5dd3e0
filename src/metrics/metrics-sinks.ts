// The worker's end of the workflows' metrics sink (src/workflows/metrics-sink.ts). Registered on every
// worker, with or without a metrics server, so that no workflow calls a sink its worker does not know.
// Not called during replay: a replayed workflow reports nothing new (the collector reads every running
// workflow once at start instead).
import type { InjectedSinks } from '@temporalio/worker';
import type { MetricsSinks } from '../workflows/metrics-sink.js';
import type { MetricsCollector } from './collector.js';

export function metricsSinks(
  collector: Pick<MetricsCollector, 'onHealing' | 'onHost'> | null,
): InjectedSinks<MetricsSinks> {
  return {
    metrics: {
      healing: { fn: (_info, report) => collector?.onHealing(report), callDuringReplay: false },
      host: { fn: (_info, report) => collector?.onHost(report), callDuringReplay: false },
    },
  };
}
