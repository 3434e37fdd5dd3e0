// A query the server turned away because the workflow is busy. While a workflow task is in flight the
// server buffers queries for that workflow, and only a few (`history.MaxBufferedQueryCount`, 1 on the dev
// server): a second one at that moment — healctl beside `npm start`'s progress, or beside the worker's
// reading at start — is refused with RESOURCE_EXHAUSTED ("consistent query buffer is full") although
// the workflow answers a moment later. Such a refusal is asked again, briefly; anything else is thrown.
import { setTimeout as delay } from 'node:timers/promises';

/** gRPC status RESOURCE_EXHAUSTED. */
const RESOURCE_EXHAUSTED = 8;

const codeOf = (e: unknown): unknown =>
  typeof e === 'object' && e !== null && 'code' in e ? e.code : undefined;

/** Whether `err` (the client's ServiceError or the gRPC error itself) is the server's "busy" refusal. */
export function isQueryBusy(err: unknown): boolean {
  return (
    codeOf(err) === RESOURCE_EXHAUSTED || (err instanceof Error && codeOf(err.cause) === RESOURCE_EXHAUSTED)
  );
}

/** `query()`, asked again up to `tries` times (100 ms doubling: 3.1 s in all) while the server says busy. */
export async function queryWhenNotBusy<T>(query: () => Promise<T>, tries = 6): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await query();
    } catch (err) {
      if (attempt >= tries || !isQueryBusy(err)) throw err;
      await delay(100 * 2 ** (attempt - 1));
    }
  }
}
