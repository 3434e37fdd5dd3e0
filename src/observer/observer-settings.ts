// The observer daemon's settings (KLR_OBSERVER_*, KLR_HTTP_DOOR_*), validated at start: a bad value stops
// it with one line naming the variable, the value and what is expected. Secrets are never echoed.
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import {
  DEFAULT_METRICS_ADDR,
  DEFAULT_SDK_METRICS_ADDR,
  formatListenAddress,
  listenAddressesClash,
  parseListenAddress as parseMetricsAddress,
  readListenAddress,
} from '../config/metrics-settings.js';
import { SettingsError, loadSettings, readSetting } from '../config/settings.js';
import { KIND_EXPECTED, isValidKind } from '../domain/identifiers.js';
import {
  type ServiceSpec,
  ServicesFileError,
  loadServices,
  workflowService,
} from '../service/services-file.js';
import { DEFAULT_KIND_LABEL, DEFAULT_SERVICE_LABEL } from './alertmanager.js';
import { DEFAULT_SPOOL_MAX_BYTES } from './delivery.js';
import { parseCommandLine, splitCommandLine } from './sources/command-line.js';

type Env = Record<string, string | undefined>;

export const DEFAULT_HTTP_DOOR_ADDR = '127.0.0.1:8787';
/** The observer's /metrics: on loopback, next to the worker's two (9464, 9465). */
export const DEFAULT_OBSERVER_METRICS_ADDR = '127.0.0.1:9466';
export const MIN_TOKEN_LENGTH = 16;

export interface ListenAddress {
  host: string;
  port: number;
}

export interface HttpDoorSettings {
  /** Where the door listens; 127.0.0.1 unless configured. */
  listen: ListenAddress;
  /** The bearer token every request must carry. */
  token: string;
  /** Largest request body; a larger one is answered 413 without being read. */
  maxBodyBytes: number;
  /** Requests per second the door accepts (token bucket refill), and how many at once (its size). */
  ratePerSecond: number;
  burst: number;
  /** The Alertmanager label that carries the symptom kind. */
  kindLabel: string;
  /** The Alertmanager label that names the service an alert is about (KLR_HTTP_DOOR_SERVICE_LABEL). */
  serviceLabel: string;
  /** A connection that carries no bytes this long is closed (also between kept-alive requests). */
  idleTimeoutMs: number;
  /** Connections open at once; more are closed as soon as they are accepted. */
  maxConnections: number;
}

export type ObserverSource =
  { type: 'file'; path: string; fromStart: boolean } | { type: 'command'; argv: string[] };

/** One log the observer follows, and the service its incidents are attributed to. */
export interface FollowedLog {
  /** The service's name, as the metrics label it (`service`); '' when the observer knows no service. */
  service: string;
  /** The workflow-id service its incidents go to; null: the legacy ids (kloros-healing/<host>/<kind>). */
  workflowService: string | null;
  source: ObserverSource;
  /**
   * The name its position state file carries (position-<name>-<hash>.json), so two services never share
   * one; null: the name the one-service settings always used (position-<hash>.json).
   */
  stateName: string | null;
}

export interface ObserverSettings {
  host: string;
  /** Where the observer keeps its file position and its spool. */
  stateDir: string;
  spoolDir: string;
  spoolMaxBytes: number;
  /** How long one delivery attempt may take before the symptom is spooled instead. */
  attemptTimeoutMs: number;
  /**
   * What the one-service settings (KLR_OBSERVER_FILE, KLR_OBSERVER_COMMAND, KLR_SERVICE_LOG) follow; null
   * when only the HTTP door runs, or when KLR_SERVICES_FILE names the logs (see `logs`).
   */
  source: ObserverSource | null;
  /** Every log followed, each with its service: `source` alone, or each service's log of the services file. */
  logs: FollowedLog[];
  /** The host's services (KLR_SERVICES_FILE, or the KLR_SERVICE_* shortcut's one; none: []). */
  services: ServiceSpec[];
  /** Services of the services file that have no log: reported at start, not followed. */
  unfollowed: string[];
  /**
   * The kind of the memory incidents of the followed log (KLR_OBSERVER_KIND): vllm_oom for vLLM's log,
   * sglang_oom for SGLang's, …; null: vllm_oom, or what a server-specific wording names.
   */
  memoryKind: string | null;
  /** The HTTP door, or null when it is off (the default). */
  httpDoor: HttpDoorSettings | null;
  /** Where the observer serves its own /metrics (KLR_OBSERVER_METRICS_ADDR); null = off. */
  metrics: ListenAddress | null;
  logLevel: string;
}

/** `127.0.0.1:8787`, `0.0.0.0:8787`, `[::1]:8787` → host and port (0 = any free port); IP literals only. */
export function parseListenAddress(text: string): ListenAddress | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  const family = isIP(host);
  if (family === 0 || (m[1] !== undefined && family !== 6) || port > 65_535) return null;
  return { host, port };
}

const onOff = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(z.enum(['1', '0', 'true', 'false', 'on', 'off', 'yes', 'no']))
  .transform((s) => ['1', 'true', 'on', 'yes'].includes(s));
const ON_OFF_EXPECTED = '1 or 0 (also true/false, on/off, yes/no)';

const wholeNumber = (min: number, max: number) =>
  z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(max));

const positiveDecimal = (max: number) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?$/)
    .transform(Number)
    .pipe(z.number().positive().max(max));

/** The HTTP door's settings, or null when KLR_HTTP_DOOR is off (the default). */
export function loadHttpDoorSettings(env: Env = process.env): HttpDoorSettings | null {
  if (!readSetting(env, 'KLR_HTTP_DOOR', onOff, '0', ON_OFF_EXPECTED)) return null;
  const listen = readSetting(
    env,
    'KLR_HTTP_DOOR_ADDR',
    z.string().transform((s, ctx) => {
      const parsed = parseListenAddress(s);
      if (!parsed) ctx.addIssue({ code: 'custom', message: 'bad address' });
      return parsed as ListenAddress;
    }),
    DEFAULT_HTTP_DOOR_ADDR,
    'IP:PORT to listen on, e.g. 127.0.0.1:8787 or [::1]:8787 (0.0.0.0 exposes the door to the network)',
  );
  const token = (env.KLR_HTTP_DOOR_TOKEN ?? '').trim();
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    // The value is a secret: say how long it was, never what it was.
    throw new SettingsError(
      'KLR_HTTP_DOOR_TOKEN',
      token === '' ? '' : `<${token.length} characters hidden>`,
      `a bearer token of at least ${MIN_TOKEN_LENGTH} characters without spaces, required while KLR_HTTP_DOOR=1 ` +
        '(e.g. the output of `openssl rand -hex 32`)',
    );
  }
  return {
    listen,
    token,
    maxBodyBytes: readSetting(
      env,
      'KLR_HTTP_DOOR_MAX_BODY_BYTES',
      wholeNumber(256, 16 * 1024 * 1024),
      String(64 * 1024),
      'a whole number of bytes, 256 to 16777216',
    ),
    ratePerSecond: readSetting(
      env,
      'KLR_HTTP_DOOR_RATE',
      positiveDecimal(100_000),
      '10',
      'requests per second > 0 (decimals allowed, e.g. 0.5)',
    ),
    burst: readSetting(
      env,
      'KLR_HTTP_DOOR_BURST',
      wholeNumber(1, 100_000),
      '20',
      'a whole number of requests ≥ 1 accepted at once',
    ),
    kindLabel: readSetting(
      env,
      'KLR_HTTP_DOOR_KIND_LABEL',
      z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/),
      DEFAULT_KIND_LABEL,
      'a Prometheus label name, e.g. kloros_kind',
    ),
    serviceLabel: readSetting(
      env,
      'KLR_HTTP_DOOR_SERVICE_LABEL',
      z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/),
      DEFAULT_SERVICE_LABEL,
      'a Prometheus label name, e.g. service or kloros_service',
    ),
    idleTimeoutMs:
      readSetting(
        env,
        'KLR_HTTP_DOOR_IDLE_TIMEOUT',
        wholeNumber(1, 3600),
        '10',
        'whole seconds a connection may stay silent before it is closed, 1 to 3600',
      ) * 1000,
    maxConnections: readSetting(
      env,
      'KLR_HTTP_DOOR_MAX_CONNECTIONS',
      wholeNumber(1, 65_535),
      '64',
      'a whole number of connections open at once, 1 to 65535',
    ),
  };
}

/**
 * KLR_OBSERVER_METRICS_ADDR, read like the worker's KLR_METRICS_ADDR. It must not take the door's port, nor
 * the worker's two: the worker and the observer of a host run side by side from one environment file, so
 * the worker's addresses are read here too (leniently: validating them is the worker's job).
 */
export function loadObserverMetricsAddress(env: Env, door: HttpDoorSettings | null): ListenAddress | null {
  const variable = 'KLR_OBSERVER_METRICS_ADDR';
  const metrics = readListenAddress(env, variable, DEFAULT_OBSERVER_METRICS_ADDR);
  if (!metrics) return null;
  const value = env[variable] ?? DEFAULT_OBSERVER_METRICS_ADDR;
  const worker = (name: string, fallback: string) => parseMetricsAddress(env[name]?.trim() || fallback);
  const others: [string, ListenAddress | null | undefined, string][] = [
    ['KLR_HTTP_DOOR_ADDR', door?.listen, "the observer's HTTP door"],
    ['KLR_METRICS_ADDR', worker('KLR_METRICS_ADDR', DEFAULT_METRICS_ADDR), "the worker's metrics"],
    ['KLR_SDK_METRICS_ADDR', worker('KLR_SDK_METRICS_ADDR', DEFAULT_SDK_METRICS_ADDR), "the SDK's metrics"],
  ];
  for (const [name, other, what] of others) {
    // Port 0 (the door's "any free port") never clashes.
    if (other && other.port !== 0 && listenAddressesClash(metrics, other)) {
      throw new SettingsError(
        variable,
        value,
        `an address other than ${name} (${formatListenAddress(other)}, ${what}): each is served on its own port`,
      );
    }
  }
  return metrics;
}

/** The daemon's settings: host, state and spool, what to follow, the HTTP door, its metrics. */
export function loadObserverSettings(env: Env = process.env): ObserverSettings {
  const base = loadSettings(env);
  const stateDir = resolve(
    readSetting(
      env,
      'KLR_OBSERVER_STATE_DIR',
      z.string().min(1),
      join(base.dataDir, 'observer'),
      'a directory path',
    ),
  );
  const services = loadServices(env);
  const servicesFile = env.KLR_SERVICES_FILE?.trim() ? resolve(env.KLR_SERVICES_FILE.trim()) : null;
  const fromStart = () => readSetting(env, 'KLR_OBSERVER_FROM_START', onOff, '0', ON_OFF_EXPECTED);
  const file = readSetting(env, 'KLR_OBSERVER_FILE', z.string(), '', 'a log file path');
  const commandText = readSetting(env, 'KLR_OBSERVER_COMMAND', z.string(), '', '');
  const serviceLog = readSetting(env, 'KLR_SERVICE_LOG', z.string(), '', 'a log file path');
  if (file && commandText) {
    throw new SettingsError(
      'KLR_OBSERVER_COMMAND',
      commandText,
      'either KLR_OBSERVER_FILE or KLR_OBSERVER_COMMAND, not both',
    );
  }
  let source: ObserverSource | null = null;
  if (commandText) {
    let argv: string[] | null;
    try {
      // A JSON array is taken as is; a command line is split into words, and shell operators are refused.
      argv = commandText.trim().startsWith('[')
        ? splitCommandLine(commandText)
        : parseCommandLine(commandText);
    } catch (err) {
      throw new SettingsError('KLR_OBSERVER_COMMAND', commandText, (err as Error).message);
    }
    if (!argv) {
      throw new SettingsError(
        'KLR_OBSERVER_COMMAND',
        commandText,
        'a JSON array of strings, e.g. ["journalctl","-f","-u","vllm","-o","cat"], or a command line',
      );
    }
    source = { type: 'command', argv };
  } else if (file || serviceLog) {
    source = { type: 'file', path: resolve(file || serviceLog), fromStart: fromStart() };
  }
  let logs: FollowedLog[] = [];
  let unfollowed: string[] = [];
  if (servicesFile !== null) {
    const set: [string, string][] = [
      ['KLR_OBSERVER_FILE', file],
      ['KLR_OBSERVER_COMMAND', commandText],
      ['KLR_SERVICE_LOG', serviceLog],
    ];
    for (const [variable, value] of set) {
      if (value.trim())
        throw new SettingsError(
          variable,
          value,
          `unset when KLR_SERVICES_FILE is set: the observer follows each service's "log:" of the services file (${servicesFile})`,
        );
    }
    ({ logs, unfollowed } = serviceLogs(services, servicesFile, fromStart()));
  } else if (source) {
    // The one-service settings: the legacy ids, labelled with the shortcut's service (none: '').
    logs = [{ service: services[0]?.name ?? '', workflowService: null, source, stateName: null }];
  }
  const memoryKind = readSetting(
    env,
    'KLR_OBSERVER_KIND',
    z.string().refine((k) => k === '' || isValidKind(k)),
    '',
    `the kind of the followed log's memory failures: ${KIND_EXPECTED}, e.g. vllm_oom or sglang_oom (blank: vllm_oom, or the server a message names)`,
  );
  const httpDoor = loadHttpDoorSettings(env);
  if (servicesFile !== null && logs.length === 0 && !httpDoor) {
    throw new ServicesFileError(
      `services file ${servicesFile} (KLR_SERVICES_FILE): no service has a "log:" to follow, and KLR_HTTP_DOOR is off: there is nothing to observe`,
    );
  }
  if (servicesFile === null && !source && !httpDoor) {
    throw new SettingsError(
      'KLR_OBSERVER_FILE',
      '',
      'a log file to follow (or KLR_SERVICE_LOG, or KLR_OBSERVER_COMMAND, or KLR_HTTP_DOOR=1): there is nothing to observe',
    );
  }
  return {
    host: base.host,
    stateDir,
    spoolDir: join(stateDir, 'spool'),
    spoolMaxBytes:
      readSetting(
        env,
        'KLR_OBSERVER_SPOOL_MAX_MB',
        wholeNumber(1, 1024 * 1024),
        String(DEFAULT_SPOOL_MAX_BYTES / (1024 * 1024)),
        'a whole number of MiB, 1 to 1048576',
      ) *
      1024 *
      1024,
    attemptTimeoutMs:
      readSetting(
        env,
        'KLR_OBSERVER_DELIVERY_TIMEOUT',
        wholeNumber(1, 600),
        '10',
        'whole seconds one delivery attempt may take before the symptom is spooled, 1 to 600',
      ) * 1000,
    source,
    logs,
    services,
    unfollowed,
    memoryKind: memoryKind === '' ? null : memoryKind,
    httpDoor,
    metrics: loadObserverMetricsAddress(env, httpDoor),
    logLevel: base.logLevel,
  };
}

/**
 * The logs of the services file's services, each attributed to its service; those without a log are
 * listed apart. Two services cannot follow one log: its incidents could not be told apart.
 */
export function serviceLogs(
  services: readonly ServiceSpec[],
  servicesFile: string,
  fromStart: boolean,
): { logs: FollowedLog[]; unfollowed: string[] } {
  const logs: FollowedLog[] = [];
  const unfollowed: string[] = [];
  const seen = new Map<string, string>();
  for (const spec of services) {
    if (spec.log === null) {
      unfollowed.push(spec.name);
      continue;
    }
    const source: ObserverSource =
      'file' in spec.log
        ? { type: 'file', path: resolve(spec.log.file), fromStart }
        : { type: 'command', argv: [...spec.log.command] };
    const key = source.type === 'file' ? `file ${source.path}` : `command ${JSON.stringify(source.argv)}`;
    const other = seen.get(key);
    if (other !== undefined)
      throw new ServicesFileError(
        `services file ${servicesFile}: services "${other}" and "${spec.name}" have the same log (${key}); ` +
          'the observer could not tell whose incidents it holds: give each service its own log',
      );
    seen.set(key, spec.name);
    logs.push({
      service: spec.name,
      workflowService: workflowService(spec),
      source,
      // The legacy service keeps the position its single-service release saved (same name, same ids).
      stateName: spec.legacyIds ? null : spec.name,
    });
  }
  return { logs, unfollowed };
}
