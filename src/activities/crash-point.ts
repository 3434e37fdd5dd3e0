// Fault injection for the chaos tests: with KLR_TEST_CRASH_AT=<activity>:<phase> the worker SIGKILLs
// itself the moment that activity reaches that point — no cleanup, no heartbeat, exactly what a power
// cut or the OOM killer does. It is the sharpest way to prove that a crash at any step of a canary or a
// restore still leaves the service healthy (test/chaos/worker-kill.test.ts). Never set in production:
// the process warns on stderr as soon as it loads this module with a point armed.

/** Every point a crash can be injected at, in the order a canary (then a restore) passes them. */
export const CRASH_POINTS = [
  'canary:apply', // the backup is written, the candidate not yet
  'canary:restart', // the candidate is written, the restart command not yet run
  'canary:restart-command', // the restart command is running
  'canary:health', // the service is restarting; waiting for /health
  'canary:soak', // the candidate answered the probe; watching it
  'restore:restart', // the old config is back, the restart command not yet run
  'restore:health', // the restore's restart ran; waiting for /health
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export const CRASH_SETTING = 'KLR_TEST_CRASH_AT';

/** The configured crash point, or null; an unknown value is an error naming the valid ones. */
export function crashPointFromEnv(env: Record<string, string | undefined> = process.env): CrashPoint | null {
  const raw = env[CRASH_SETTING];
  if (raw === undefined || raw === '') return null;
  if ((CRASH_POINTS as readonly string[]).includes(raw)) return raw as CrashPoint;
  throw new Error(
    `${CRASH_SETTING}=${JSON.stringify(raw)} is not valid: expected one of ${CRASH_POINTS.join(', ')}`,
  );
}

const armed = crashPointFromEnv();
if (armed !== null) {
  process.stderr.write(
    `WARNING: ${CRASH_SETTING}=${armed}: this worker will SIGKILL itself there (chaos tests only)\n`,
  );
}

/** SIGKILL this process if the test asked to crash here. */
export function crashPoint(point: CrashPoint): void {
  if (armed === point) process.kill(process.pid, 'SIGKILL');
}

export const crashPointArmed = (): CrashPoint | null => armed;
