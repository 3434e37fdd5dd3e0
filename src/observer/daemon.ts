// The observer of one GPU host, assembled: the delivery (Temporal, or the spool while it is away), the
// source that is followed through the detection pipeline, and the HTTP door when it is on. stop() ends
// the source first (its position is saved after the last symptom it handed over), then the door, then
// the delivery (which closes the spool).
import type { Logger } from '../config/logger.js';
import type { TemporalTarget } from '../config/temporal-connection.js';
import { type SymptomDelivery, createSymptomDelivery } from './delivery.js';
import { type HttpDoor, startHttpDoor } from './http-door.js';
import type { ObserverSettings } from './observer-settings.js';

export interface RunningObserver {
  delivery: SymptomDelivery;
  door: HttpDoor | null;
  /** Settles when the source ends by itself (a command that exits) or fails, or once stopped. */
  done: Promise<void>;
  stop(): Promise<void>;
}

export async function startObserver(
  settings: ObserverSettings,
  target: TemporalTarget,
  log: Logger,
): Promise<RunningObserver> {
  const delivery = await createSymptomDelivery({
    host: settings.host,
    target,
    spoolDir: settings.spoolDir,
    spoolMaxBytes: settings.spoolMaxBytes,
    attemptTimeoutMs: settings.attemptTimeoutMs,
    log: log.child({ part: 'delivery' }),
  });
  let door: HttpDoor | null = null;
  try {
    if (settings.httpDoor) {
      door = await startHttpDoor({
        settings: settings.httpDoor,
        delivery,
        host: settings.host,
        log: log.child({ part: 'http-door' }),
      });
    }
  } catch (err) {
    await delivery.close();
    throw err;
  }
  const stopSource = new AbortController();
  const done = settings.source
    ? followSource(settings, delivery, log, stopSource.signal)
    : new Promise<void>((resolve) => stopSource.signal.addEventListener('abort', () => resolve()));
  let stopping: Promise<void> | undefined;
  return {
    delivery,
    door,
    done,
    stop: () =>
      (stopping ??= (async () => {
        stopSource.abort();
        await done.catch(() => undefined);
        await door?.close();
        await delivery.close();
      })()),
  };
}

/**
 * Follows the configured source through the detection pipeline into the delivery, until `signal` aborts.
 * The pipeline (src/observer/pipeline.ts) is being built beside this daemon; until it is there, a source
 * is refused at start with a clear message rather than ignored.
 */
async function followSource(
  settings: ObserverSettings,
  _delivery: SymptomDelivery,
  _log: Logger,
  _signal: AbortSignal,
): Promise<void> {
  const what = settings.source?.type === 'command' ? 'KLR_OBSERVER_COMMAND' : 'KLR_OBSERVER_FILE';
  throw new Error(
    `${what}: following a log needs the detection pipeline, which this build does not have yet; ` +
      'run with the HTTP door only (KLR_HTTP_DOOR=1) or use a build that includes src/observer/pipeline.ts',
  );
}
