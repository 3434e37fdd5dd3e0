// The Temporal CLI's connection flags, on every healctl command (before or after its name). A flag wins
// over the environment and the profile: it is set as the TEMPORAL_* variable that Temporal's envconfig
// loader reads (src/config/temporal-connection.ts), so flags, variables and TOML profiles mean the same.
import type { Command } from 'commander';

interface ConnectionFlag {
  flags: string;
  description: string;
  variable: string;
  /** commander's name for the option's value. */
  key: string;
}

const CONNECTION_FLAGS: readonly ConnectionFlag[] = [
  {
    flags: '--address <host:port>',
    description: 'Temporal frontend (default 127.0.0.1:7233)',
    variable: 'TEMPORAL_ADDRESS',
    key: 'address',
  },
  {
    flags: '-n, --namespace <name>',
    description: 'Temporal namespace (default "default")',
    variable: 'TEMPORAL_NAMESPACE',
    key: 'namespace',
  },
  {
    flags: '--api-key <key>',
    description: 'API key (turns TLS on)',
    variable: 'TEMPORAL_API_KEY',
    key: 'apiKey',
  },
  { flags: '--tls', description: 'connect with TLS', variable: 'TEMPORAL_TLS', key: 'tls' },
  {
    flags: '--tls-cert-path <path>',
    description: 'client certificate (mTLS)',
    variable: 'TEMPORAL_TLS_CLIENT_CERT_PATH',
    key: 'tlsCertPath',
  },
  {
    flags: '--tls-key-path <path>',
    description: 'client private key (mTLS)',
    variable: 'TEMPORAL_TLS_CLIENT_KEY_PATH',
    key: 'tlsKeyPath',
  },
  {
    flags: '--tls-ca-path <path>',
    description: 'CA certificate that signed the server certificate',
    variable: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
    key: 'tlsCaPath',
  },
  {
    flags: '--tls-server-name <name>',
    description: 'server name expected in its certificate',
    variable: 'TEMPORAL_TLS_SERVER_NAME',
    key: 'tlsServerName',
  },
  {
    flags: '--profile <name>',
    description: 'profile of the Temporal config file',
    variable: 'TEMPORAL_PROFILE',
    key: 'profile',
  },
  {
    flags: '--config-file <path>',
    description: 'Temporal config file (TOML; default ~/.config/temporalio/temporal.toml)',
    variable: 'TEMPORAL_CONFIG_FILE',
    key: 'configFile',
  },
];

export function addConnectionFlags(program: Command, env: NodeJS.ProcessEnv = process.env): void {
  for (const f of CONNECTION_FLAGS) program.option(f.flags, `${f.description} [${f.variable}]`);
  program.hook('preAction', () => {
    const values = program.opts<Record<string, string | boolean | undefined>>();
    for (const f of CONNECTION_FLAGS) {
      const value = values[f.key];
      if (value !== undefined) env[f.variable] = value === true ? 'true' : String(value);
    }
  });
}
