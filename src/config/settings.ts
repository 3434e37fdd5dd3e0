// Every KLR_* setting, read once from the environment and validated. A bad value stops the process with
// one line that names the variable, the value and what is expected.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { HOST_EXPECTED, isValidHost, isValidKind } from '../domain/identifiers.js';
import { parseKindActions } from '../domain/kind-policy.js';
import { isValidTimeZone, parseMaintenanceWindow } from '../domain/maintenance-window.js';
import { DEFAULT_HOST_MAX_CANARIES_7D, DEFAULT_POLICY, type HealingPolicy } from '../domain/policy.js';

export class SettingsError extends Error {
  constructor(
    readonly variable: string,
    readonly value: string,
    readonly expected: string,
  ) {
    super(`invalid setting ${variable}=${JSON.stringify(value)}: expected ${expected}`);
    this.name = 'SettingsError';
  }
}

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

const decimal = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?$/)
    .transform(Number)
    .pipe(z.number().min(min).max(max));

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
      wholeNumber(0, 365 * 86_400),
      '14400',
      'whole seconds ≥ 0 (0 = the flag never lapses)',
    ),
    maintenanceWindow: windowText,
    maintenanceTimeZone: tz,
    maxDowntimeSeconds: readSetting(
      env,
      'KLR_GPU_MAINTENANCE_MAX_DOWNTIME',
      wholeNumber(1, 86_400),
      '60',
      'whole seconds of downtime per window, 1 to 86400',
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
      decimal(0, 24 * 365),
      '6',
      'hours ≥ 0 between canaries on one host (decimals allowed, e.g. 0.5)',
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
      wholeNumber(0, 3600),
      '30',
      'whole seconds ≥ 0 to watch a canary for new OOMs, at most 3600',
    ),
    leaseTtlSeconds: readSetting(
      env,
      'KLR_CANARY_LEASE_TTL',
      wholeNumber(60, 86_400),
      '1800',
      'whole seconds a canary lease may be held, 60 to 86400',
    ),
    predictIntervalSeconds: readSetting(
      env,
      'KLR_PREDICT_INTERVAL',
      wholeNumber(0, 86_400),
      '300',
      'whole seconds between two predictive runs, 0 to 86400',
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
