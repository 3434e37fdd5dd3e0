// What every command that talks to Temporal needs: the target (Temporal's env/TOML conventions),
// a connected client, and the GPU host it speaks about. The connection is closed when the command ends.
import type { Client } from '@temporalio/client';
import { loadTemporalTarget, type TemporalTarget } from '../../config/temporal-connection.js';
import { defaultHostName } from '../../config/settings.js';
import { connectClient } from '../../temporal/temporal-client.js';

export interface CommandContext {
  client: Client;
  target: TemporalTarget;
}

export async function withClient<T>(fn: (ctx: CommandContext) => Promise<T>): Promise<T> {
  const target = loadTemporalTarget();
  const client = await connectClient(target);
  try {
    return await fn({ client, target });
  } finally {
    await client.connection.close();
  }
}

/** The GPU host a command speaks about: --host, then KLR_HOST, then this machine's name. */
export function resolveHost(option: string | undefined): string {
  return option ?? process.env.KLR_HOST ?? defaultHostName();
}
