// Entry point of the GPU-host worker (`npm run worker`, or the systemd unit on a GPU host): validates
// every setting, then serves this host's task queue until SIGINT/SIGTERM.
import { join } from 'node:path';
import { SettingsError, loadSettings } from '../config/settings.js';
import { formatListenAddress, loadMetricsSettings } from '../config/metrics-settings.js';
import { loadTemporalTarget } from '../config/temporal-connection.js';
import { createLogger } from '../config/logger.js';
import { createGpuActivities } from '../activities/gpu-activities.js';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { startHostWorker } from './host-worker.js';

function fail(err: unknown): never {
  console.error(
    err instanceof SettingsError ? err.message : err instanceof Error ? err.message : String(err),
  );
  process.exit(err instanceof SettingsError ? 2 : 1);
}

let settings;
let target;
let gpuActivities;
let metricsSettings;
try {
  settings = loadSettings();
  metricsSettings = loadMetricsSettings();
  target = loadTemporalTarget();
  gpuActivities = createGpuActivities(process.env, settings, join(settings.dataDir, 'audit'));
} catch (err) {
  fail(err);
}

const logger = createLogger('kloros-worker', settings.logLevel);
// The SDK's own logs: warnings and errors unless debugging. Its own metrics (polls, task latencies,
// slots) on a second address, served by the SDK's core (docs/metrics.md). Installed once, before any
// connection.
const sdkMetrics = metricsSettings.sdkMetrics;
try {
  Runtime.install({
    logger: new DefaultLogger(
      settings.logLevel === 'debug' || settings.logLevel === 'trace' ? 'DEBUG' : 'WARN',
    ),
    ...(sdkMetrics
      ? {
          telemetryOptions: {
            metrics: {
              prometheus: { bindAddress: formatListenAddress(sdkMetrics), countersTotalSuffix: true },
            },
          },
        }
      : {}),
  });
} catch (err) {
  fail(
    new Error(
      `KLR_SDK_METRICS_ADDR: cannot serve the Temporal SDK's metrics on ${sdkMetrics ? formatListenAddress(sdkMetrics) : 'off'} (${err instanceof Error ? err.message : String(err)})`,
    ),
  );
}
try {
  const running = await startHostWorker({
    settings,
    target,
    logger,
    gpuActivities,
    metricsAddress: metricsSettings.metrics,
  });
  await running.done;
} catch (err) {
  logger.error({ err }, 'worker failed');
  fail(err);
}
