// The GPU-host worker process, shared by `npm run worker` (src/workers/main.ts) and `healctl worker`:
// validate every setting, install the SDK runtime, serve this host's task queue until SIGINT/SIGTERM.
import { join } from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { createGpuActivities } from '../activities/gpu-activities.js';
import { measuredRestart } from '../activities/restart-estimate.js';
import { createLogger } from '../config/logger.js';
import { formatListenAddress, loadMetricsSettings } from '../config/metrics-settings.js';
import { loadSettings } from '../config/settings.js';
import { loadTemporalTarget } from '../config/temporal-connection.js';
import { restartFitWarnings } from '../domain/restart-fit.js';
import { startHostWorker } from './host-worker.js';

/**
 * Runs the worker in this process until it stops. Throws SettingsError on a bad setting (before anything
 * starts) and any other error when the worker cannot start or fails.
 */
export async function runHostWorkerProcess(
  env: Record<string, string | undefined> = process.env,
): Promise<void> {
  const settings = loadSettings(env);
  const metricsSettings = loadMetricsSettings(env);
  const target = loadTemporalTarget(env);
  const gpuActivities = createGpuActivities(env, settings, join(settings.dataDir, 'audit'));

  const logger = createLogger('kloros-worker', settings.logLevel);
  // Each service's restart against the host's one budget: a restart of any of them is downtime in its window
  // (no service configured: the host's measured restarts against the budget alone).
  const auditDir = join(settings.dataDir, 'audit');
  const checks = gpuActivities.services.length > 0 ? gpuActivities.services : [null];
  for (const spec of checks) {
    const fit = restartFitWarnings({
      budgetSeconds: settings.policy.maxDowntimeSeconds,
      restartTimeoutMs: spec?.settings.restartTimeoutMs ?? null,
      measured: await measuredRestart(
        auditDir,
        settings.host,
        spec && { name: spec.name, legacy: spec.legacyIds },
      ),
    });
    for (const warning of fit) logger.warn(spec ? { service: spec.name } : {}, warning);
  }
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
                // Prometheus conventions: durations in seconds, the unit in the name, counters in _total.
                prometheus: {
                  bindAddress: formatListenAddress(sdkMetrics),
                  countersTotalSuffix: true,
                  unitSuffix: true,
                  useSecondsForDurations: true,
                },
              },
            },
          }
        : {}),
    });
  } catch (err) {
    throw new Error(
      `KLR_SDK_METRICS_ADDR: cannot serve the Temporal SDK's metrics on ${sdkMetrics ? formatListenAddress(sdkMetrics) : 'off'} (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  try {
    const running = await startHostWorker({
      settings,
      target,
      logger,
      gpuActivities,
      legacyService: gpuActivities.services.find((s) => s.legacyIds)?.name ?? null,
      serviceNames: gpuActivities.services.map((s) => s.name),
      metricsAddress: metricsSettings.metrics,
      metricsRecheckSeconds: metricsSettings.recheckSeconds,
    });
    await running.done;
  } catch (err) {
    logger.error({ err }, 'worker failed');
    throw err;
  }
}
