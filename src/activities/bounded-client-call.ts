// A Temporal client call made by an activity ends when the activity is cancelled (a worker shutting
// down, a cancelled workflow) or at a deadline inside the activity's own timeout. Without it, an update
// whose answer needs a workflow task of this same worker (the coordinator's lease) polls forever once the
// worker stops polling, and the worker's shutdown waits on it.
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';

export function boundedClientCall<R>(client: Client, withinMs: number, call: () => Promise<R>): Promise<R> {
  const signal = AbortSignal.any([Context.current().cancellationSignal, AbortSignal.timeout(withinMs)]);
  return client.withAbortSignal(signal, call);
}
