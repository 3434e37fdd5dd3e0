// Every KLR_* setting, read once from the environment and validated. A bad value stops the process with
// one line that names the variable, the value and what is expected.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseDurationSeconds } from './duration.js';
import { HOST_EXPECTED, isValidHost, isValidKind } from '../domain/identifiers.js';
import { parseKindActions } from '../domain/kind-policy.js';
import { isValidTimeZone, parseMaintenanceWindow } from '../domain/maintenance-window.js';
import { DEFAULT_HOST_MAX_CANARIES_7D, DEFAULT_POLICY, type HealingPolicy } from '../domain/policy.js';
import { quotedValue } from '../domain/quoted-value.js';

export class SettingsError extends Error {
  constructor(
    readonly variable: string,
    readonly value: string,
    readonly expected: string,
  ) {
    super(`invalid setting ${variable}=${echoed(value)}: expected ${expected}`);
    this.name = 'SettingsError';
  }
}

/** A bad value as the error quotes it: whole when short, else its start and its length (never 200 kB). */
const echoed = (value: string): string => quotedValue(value, 120);

export interface Settings {
  policy: HealingPolicy;
  /** This GPU host's name: the worker's task queue and the workflows' ids derive from it. */
  host: string;
  /** Where the dev server's SQLite file, the audit log and the observer's spool live. */
  dataDir: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
}

type Env = Record<string, string | undefined>;

/** Read one variable through a schema (blank = `fallback`); a bad value is a {@link SettingsError}. */
export function readSetting<T>(
  env: Env,
  name: string,
  schema: z.ZodType<T>,
  fallback: string,
  expected: string,
): T {
  const raw = env[name];
  const value = raw === undefined || raw.trim() === '' ? fallback : raw.trim();
  const result = schema.safeParse(value);
  if (!result.success) throw new SettingsError(name, raw ?? '', expected);
  return result.data;
}

const wholeNumber = (min: number, max: number) =>
  z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(max));

/**
 * A duration setting ("4h", "90m", "1h30m", "45s"; a bare number in the setting's historical unit), as
 * seconds (or hours, for the settings that were hours) within [min, max] seconds; `whole` rounds nothing:
 * a value that is not whole seconds is refused.
 */
export const duration = (opts: { min: number; max: number; bare: 's' | 'h'; whole?: boolean }) =>
  z.string().transform((text, ctx) => {
    const seconds = parseDurationSeconds(text, opts.bare, opts.bare === 'h');
    if (
      seconds === null ||
      seconds < opts.min ||
      seconds > opts.max ||
      (opts.whole && !Number.isInteger(seconds))
    ) {
      ctx.addIssue({ code: 'custom', message: 'not a duration in range' });
      return z.NEVER;
    }
    return opts.bare === 'h' ? seconds / 3600 : seconds;
  });

export function hostTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** The host name as a valid identifier: the OS name, lower-cased, with anything else replaced by "-". */
export function defaultHostName(): string {
  const cleaned = hostname()
    .toLowerCase()
    .replace(/[^a-z0-9_.-]/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 128);
  return cleaned || 'localhost';
}

const KIND_ACTIONS_EXPECTED =
  'comma-separated kind=action pairs, action one of heal, alert, count (e.g. my_mem_alert=heal,ecc_page_retired=alert); gpu_xid can never be heal';

function readKindActions(env: Env): NonNullable<HealingPolicy['kindActions']> {
  const raw = env.KLR_KIND_ACTIONS ?? '';
  const parsed = parseKindActions(raw, isValidKind);
  if (!parsed.ok)
    throw new SettingsError('KLR_KIND_ACTIONS', raw, `${KIND_ACTIONS_EXPECTED} (${parsed.error})`);
  return parsed.actions;
}

export function loadSettings(env: Env = process.env): Settings {
  const tz = readSetting(
    env,
    'KLR_GPU_MAINTENANCE_TZ',
    z.string().refine(isValidTimeZone),
    hostTimeZone(),
    'an IANA time zone such as Europe/Berlin or UTC',
  );
  const windowText = readSetting(
    env,
    'KLR_GPU_MAINTENANCE_WINDOW',
    z.string(),
    DEFAULT_POLICY.maintenanceWindow,
    '',
  );
  try {
    parseMaintenanceWindow(windowText, tz);
  } catch (err) {
    throw new SettingsError(
      'KLR_GPU_MAINTENANCE_WINDOW',
      env.KLR_GPU_MAINTENANCE_WINDOW ?? '',
      `HH:MM-HH:MM in 24-hour time, e.g. 03:00-07:00 (${(err as Error).message})`,
    );
  }
  const policy: HealingPolicy = {
    threshold24h: readSetting(
      env,
      'KLR_SYMPTOM_THRESHOLD_24H',
      wholeNumber(1, 1_000_000),
      '3',
      'a whole number of symptoms ≥ 1',
    ),
    escalationFlagTtlSeconds: readSetting(
      env,
      'KLR_ESCALATION_FLAG_TTL',
      duration({ min: 0, max: 365 * 86_400, bare: 's', whole: true }),
      '14400',
      'a duration such as 4h, 90m or 14400 (bare numbers are seconds), up to 365d; 0 = the flag never lapses',
    ),
    maintenanceWindow: windowText,
    maintenanceTimeZone: tz,
    maxDowntimeSeconds: readSetting(
      env,
      'KLR_GPU_MAINTENANCE_MAX_DOWNTIME',
      duration({ min: 1, max: 86_400, bare: 's', whole: true }),
      '60',
      'downtime per window as a duration such as 5m or 300 (bare numbers are seconds), 1s to 24h, whole seconds',
    ),
    defaultMode: readSetting(
      env,
      'KLR_CANARY_MODE',
      z.enum(['predictive', 'canary']),
      'predictive',
      '"predictive" or "canary"',
    ),
    cooldownHours: readSetting(
      env,
      'KLR_CANARY_COOLDOWN_HOURS',
      duration({ min: 0, max: 365 * 86_400, bare: 'h' }),
      '6',
      'the time between canaries on one host as a duration such as 6h or 90m, or a number of hours (decimals allowed, e.g. 0.5), up to 365d',
    ),
    maxAttempts: readSetting(
      env,
      'KLR_CANARY_MAX_ATTEMPTS',
      wholeNumber(1, 100),
      '3',
      'a whole number of canary attempts per escalation, 1 to 100',
    ),
    soakSeconds: readSetting(
      env,
      'KLR_CANARY_SOAK_SECONDS',
      duration({ min: 0, max: 3600, bare: 's', whole: true }),
      '30',
      'how long to watch a canary for new OOMs as a duration such as 30s or 2m (bare numbers are seconds), 0 to 1h, whole seconds',
    ),
    leaseTtlSeconds: readSetting(
      env,
      'KLR_CANARY_LEASE_TTL',
      duration({ min: 60, max: 86_400, bare: 's', whole: true }),
      '1800',
      'how long a canary lease may be held as a duration such as 30m or 1800 (bare numbers are seconds), 1m to 24h, whole seconds',
    ),
    predictIntervalSeconds: readSetting(
      env,
      'KLR_PREDICT_INTERVAL',
      duration({ min: 0, max: 86_400, bare: 's', whole: true }),
      '300',
      'the time between two predictive runs as a duration such as 5m or 300 (bare numbers are seconds), 0 to 24h, whole seconds',
    ),
    historyEventsLimit: readSetting(
      env,
      'KLR_HISTORY_EVENTS_LIMIT',
      wholeNumber(200, 50_000),
      '10000',
      'a whole number of history events, 200 to 50000, after which a run continues as new',
    ),
    kindActions: readKindActions(env),
    hostMaxCanaries7d: readSetting(
      env,
      'KLR_HOST_MAX_CANARIES_7D',
      wholeNumber(1, 1000),
      String(DEFAULT_HOST_MAX_CANARIES_7D),
      'a whole number of canaries one host may run in any 7 days, all kinds together, 1 to 1000',
    ),
  };
  return {
    policy,
    host: readSetting(env, 'KLR_HOST', z.string().refine(isValidHost), defaultHostName(), HOST_EXPECTED),
    dataDir: resolve(readSetting(env, 'KLR_DATA_DIR', z.string().min(1), '.data', 'a directory path')),
    logLevel: readSetting(
      env,
      'KLR_LOG_LEVEL',
      z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']),
      'info',
      'one of fatal, error, warn, info, debug, trace',
    ),
  };
}
