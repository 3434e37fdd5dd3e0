// How to reach Temporal, by Temporal's own conventions: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
// TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE and the TOML config file (TEMPORAL_CONFIG_FILE).
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { SettingsError } from './settings.js';

export const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';

export interface TemporalTarget {
  address: string;
  namespace: string;
  connectionOptions: NativeConnectionOptions;
  /** Whether TLS is on (explicitly, or because an API key is set). */
  tls: boolean;
}

export function loadTemporalTarget(env: Record<string, string | undefined> = process.env): TemporalTarget {
  let config;
  try {
    config = loadClientConnectConfig({
      overrideEnvVars: Object.fromEntries(
        Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
      ),
    });
  } catch (err) {
    throw new SettingsError(
      'TEMPORAL_*',
      env.TEMPORAL_PROFILE ?? env.TEMPORAL_CONFIG_FILE ?? '',
      `a valid Temporal client configuration (${(err as Error).message})`,
    );
  }
  const address = config.connectionOptions.address ?? DEFAULT_TEMPORAL_ADDRESS;
  if (!/^[^\s:/]+(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$/.test(address)) {
    throw new SettingsError(
      'TEMPORAL_ADDRESS',
      address,
      'host:port, e.g. 127.0.0.1:7233 or my-ns.a1b2c.tmprl.cloud:7233',
    );
  }
  return {
    address,
    namespace: config.namespace ?? 'default',
    connectionOptions: { ...config.connectionOptions, address },
    tls: Boolean(config.connectionOptions.tls),
  };
}
