// A Temporal client for healctl, the observer and other services, with an error that says what to do
// when the server cannot be reached.
import { Client, Connection } from '@temporalio/client';
import type { TemporalTarget } from '../config/temporal-connection.js';

export class TemporalUnreachableError extends Error {
  constructor(target: TemporalTarget, cause: unknown) {
    super(unreachableText(target, cause instanceof Error ? cause.message : String(cause)));
    this.name = 'TemporalUnreachableError';
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/;

/** What to check, by what the connection tried: TLS or credentials, a local stack, or a remote server. */
export function unreachableText(target: TemporalTarget, why: string): string {
  const head = `cannot reach Temporal at ${target.address}${target.tls ? ' over TLS' : ''} (${why})`;
  if (/unauthenticated|permission denied|api key|unauthorized/i.test(why))
    return `${head} — the server refused the credentials: check --api-key (TEMPORAL_API_KEY) and -n/--namespace`;
  if (target.tls || /tls|ssl|certificate|handshake/i.test(why))
    return (
      `${head} — check that the server speaks TLS and that --tls-ca-path, --tls-cert-path, --tls-key-path ` +
      'and --tls-server-name (TEMPORAL_TLS_*) match it; a local dev server speaks plain text: drop --tls and --api-key'
    );
  if (LOOPBACK.test(target.address))
    return `${head} — start the local stack with \`npm start\`, or pass --address (TEMPORAL_ADDRESS)`;
  return `${head} — is the server up and reachable from this machine? Check --address (TEMPORAL_ADDRESS)`;
}

export async function connectClient(target: TemporalTarget, connectTimeoutMs = 5000): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...target.connectionOptions, connectTimeout: connectTimeoutMs });
  } catch (err) {
    throw new TemporalUnreachableError(target, err);
  }
  return new Client({ connection, namespace: target.namespace });
}
