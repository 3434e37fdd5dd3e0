// Where the worker serves its metrics: this project's own (/metrics, prom-client) and the Temporal SDK's
// (served by the SDK's core on a second address). Each is "IP:PORT", or off.
import { isIP } from 'node:net';
import { z } from 'zod';
import { SettingsError, duration, readSetting } from './settings.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface MetricsSettings {
  /** KLR_METRICS_ADDR: the worker's /metrics; null = off. */
  metrics: ListenAddress | null;
  /** KLR_SDK_METRICS_ADDR: the Temporal SDK's own metrics; null = off. */
  sdkMetrics: ListenAddress | null;
  /**
   * KLR_METRICS_RECHECK, seconds: how long an alerting figure (an armed flag, a latched restore failure)
   * may go without a report before a scrape checks, with one call, that its workflow still runs.
   */
  recheckSeconds: number;
}

export const DEFAULT_METRICS_RECHECK = '10m';

export const DEFAULT_METRICS_ADDR = '127.0.0.1:9464';
export const DEFAULT_SDK_METRICS_ADDR = '127.0.0.1:9465';

/** What an address setting expects, with examples on `port`. */
function expectedAddress(port: number): string {
  return `IP:PORT to listen on (e.g. 127.0.0.1:${port}, 0.0.0.0:${port}, [::1]:${port}; port 1-65535), or off (also 0)`;
}

const EXPECTED = expectedAddress(9464);

/** "127.0.0.1:9464" / "[::1]:9464" → {host, port}; "off" / "0" → null; anything else → undefined. */
export function parseListenAddress(text: string): ListenAddress | null | undefined {
  const value = text.trim();
  if (value === 'off' || value === '0') return null;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (!m) return undefined;
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  const family = isIP(host);
  if (family === 0 || (m[1] !== undefined && family !== 6) || port < 1 || port > 65_535) return undefined;
  return { host, port };
}

/** "host:port" as a URL authority (IPv6 in brackets). */
export function formatListenAddress(a: ListenAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

type Env = Record<string, string | undefined>;

const address = z.string().transform((v, ctx) => {
  const parsed = parseListenAddress(v);
  if (parsed === undefined) {
    ctx.addIssue({ code: 'custom', message: EXPECTED });
    return z.NEVER;
  }
  return parsed;
});

/**
 * One more metrics address setting, read like KLR_METRICS_ADDR: "IP:PORT" or off; blank = `fallback`. A bad
 * value is a SettingsError whose examples use the fallback's port.
 */
export function readListenAddress(env: Env, variable: string, fallback: string): ListenAddress | null {
  const example = parseListenAddress(fallback)?.port ?? 9464;
  return readSetting(env, variable, address, fallback, expectedAddress(example));
}

/** Whether two listen addresses would take the same port (the same IP, or one of them every interface). */
export function listenAddressesClash(a: ListenAddress, b: ListenAddress): boolean {
  if (a.port !== b.port) return false;
  const any = ['0.0.0.0', '::'];
  return a.host === b.host || any.includes(a.host) || any.includes(b.host);
}

export function loadMetricsSettings(env: Env = process.env): MetricsSettings {
  const metrics = readSetting(env, 'KLR_METRICS_ADDR', address, DEFAULT_METRICS_ADDR, EXPECTED);
  const sdkMetrics = readSetting(env, 'KLR_SDK_METRICS_ADDR', address, DEFAULT_SDK_METRICS_ADDR, EXPECTED);
  if (metrics && sdkMetrics && listenAddressesClash(metrics, sdkMetrics)) {
    throw new SettingsError(
      'KLR_SDK_METRICS_ADDR',
      env.KLR_SDK_METRICS_ADDR ?? DEFAULT_SDK_METRICS_ADDR,
      `an address other than KLR_METRICS_ADDR (${formatListenAddress(metrics)}): the SDK serves its own metrics on a second port`,
    );
  }
  const recheckSeconds = readSetting(
    env,
    'KLR_METRICS_RECHECK',
    duration({ min: 1, max: 7 * 24 * 3600, bare: 's' }),
    DEFAULT_METRICS_RECHECK,
    'a duration from 1s to 7d (e.g. 10m, 600)',
  );
  return { metrics, sdkMetrics, recheckSeconds };
}
