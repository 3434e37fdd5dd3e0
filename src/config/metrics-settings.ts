// Where the worker serves its metrics: this project's own (/metrics, prom-client) and the Temporal SDK's
// (served by the SDK's core on a second address). Each is "IP:PORT", or off.
import { isIP } from 'node:net';
import { z } from 'zod';
import { SettingsError, readSetting } from './settings.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface MetricsSettings {
  /** KLR_METRICS_ADDR: the worker's /metrics; null = off. */
  metrics: ListenAddress | null;
  /** KLR_SDK_METRICS_ADDR: the Temporal SDK's own metrics; null = off. */
  sdkMetrics: ListenAddress | null;
}

export const DEFAULT_METRICS_ADDR = '127.0.0.1:9464';
export const DEFAULT_SDK_METRICS_ADDR = '127.0.0.1:9465';

const EXPECTED =
  'IP:PORT to listen on (e.g. 127.0.0.1:9464, 0.0.0.0:9464, [::1]:9464; port 1-65535), or off (also 0)';

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

export function loadMetricsSettings(env: Env = process.env): MetricsSettings {
  const metrics = readSetting(env, 'KLR_METRICS_ADDR', address, DEFAULT_METRICS_ADDR, EXPECTED);
  const sdkMetrics = readSetting(env, 'KLR_SDK_METRICS_ADDR', address, DEFAULT_SDK_METRICS_ADDR, EXPECTED);
  if (metrics && sdkMetrics && metrics.port === sdkMetrics.port) {
    const sameHost =
      metrics.host === sdkMetrics.host ||
      ['0.0.0.0', '::'].includes(metrics.host) ||
      ['0.0.0.0', '::'].includes(sdkMetrics.host);
    if (sameHost) {
      throw new SettingsError(
        'KLR_SDK_METRICS_ADDR',
        env.KLR_SDK_METRICS_ADDR ?? DEFAULT_SDK_METRICS_ADDR,
        `an address other than KLR_METRICS_ADDR (${formatListenAddress(metrics)}): the SDK serves its own metrics on a second port`,
      );
    }
  }
  return { metrics, sdkMetrics };
}
