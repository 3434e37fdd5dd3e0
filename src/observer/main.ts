// Entry point of the observer daemon of one GPU host (`npm run observer`, or its systemd unit): validates
// every setting, follows the service's log (or a command's output) into the HealingWorkflows, serves the
// HTTP door when it is on and its own /metrics, and stops cleanly on SIGINT/SIGTERM (position saved, spool closed).
import { SettingsError } from '../config/settings.js';
import { ServicesFileError } from '../service/services-file.js';
import { loadTemporalTarget } from '../config/temporal-connection.js';
import { createLogger } from '../config/logger.js';
import { loadObserverSettings } from './observer-settings.js';
import { startObserver } from './daemon.js';

function fail(err: unknown): never {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(err instanceof SettingsError || err instanceof ServicesFileError ? 2 : 1);
}

let settings;
let target;
try {
  settings = loadObserverSettings();
  target = loadTemporalTarget();
} catch (err) {
  fail(err);
}

const logger = createLogger('kloros-observer', settings.logLevel);
let running;
try {
  running = await startObserver(settings, target, logger);
} catch (err) {
  logger.error({ error: (err as Error).message }, 'observer failed to start');
  fail(err);
}
logger.info(
  {
    host: settings.host,
    source: settings.source,
    ...(settings.services.length > 0
      ? {
          services: settings.logs.map((l) => ({
            service: l.service,
            workflowService: l.workflowService,
            source: l.source,
          })),
          unfollowed: settings.unfollowed,
        }
      : {}),
    stateDir: settings.stateDir,
    temporal: target.address,
    httpDoor: running.door?.url ?? null,
    metrics: running.metricsUrl,
    spool: running.delivery.stats().pending,
  },
  'observer started',
);

let exitCode = 0;
const stop = async (reason: string) => {
  logger.info({ reason }, 'observer stopping');
  await running.stop();
  logger.info({ pending: running.delivery.stats().pending }, 'observer stopped');
  process.exit(exitCode);
};
process.once('SIGINT', () => void stop('SIGINT'));
process.once('SIGTERM', () => void stop('SIGTERM'));
running.done.then(
  () => void stop('the source ended'),
  (err: unknown) => {
    logger.error({ error: (err as Error).message }, 'observer source failed');
    exitCode = 1;
    void stop('the source failed');
  },
);
