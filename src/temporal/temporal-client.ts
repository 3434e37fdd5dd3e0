// A Temporal client for healctl, the observer and other services, with an error that says what to do
// when the server cannot be reached.
import { Client, Connection } from '@temporalio/client';
import type { TemporalTarget } from '../config/temporal-connection.js';

export class TemporalUnreachableError extends Error {
  constructor(target: TemporalTarget, cause: unknown) {
    super(
      `cannot reach Temporal at ${target.address} (${cause instanceof Error ? cause.message : String(cause)}) — ` +
        'start the local stack with `npm start` or set TEMPORAL_ADDRESS',
    );
    this.name = 'TemporalUnreachableError';
  }
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
