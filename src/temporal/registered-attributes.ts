// Which of the project's search attributes the namespace has registered. A workflow that upserts an
// attribute the namespace lacks fails its task (and fails again on every retry), so an attribute added
// by a later release is set only once it is known to be registered.
import type { Client } from '@temporalio/client';

/** Names of the namespace's custom search attributes (operator API). */
export async function registeredSearchAttributes(client: Client): Promise<Set<string>> {
  const { customAttributes = {} } = await client.connection.operatorService.listSearchAttributes({
    namespace: client.options.namespace,
  });
  return new Set(Object.keys(customAttributes));
}

/**
 * A cached answer to "is `name` registered?": asked at most once per `ttlMs`, and false when the operator
 * API cannot answer (e.g. not permitted for this API key): the attribute is then left out, never risked.
 */
export function attributeCheck(
  client: Client,
  name: string,
  onError: (err: unknown) => void,
  ttlMs = 60_000,
): () => Promise<boolean> {
  let cached: { at: number; value: boolean } | null = null;
  return async () => {
    if (cached && Date.now() - cached.at < ttlMs) return cached.value;
    let value = false;
    try {
      value = (await registeredSearchAttributes(client)).has(name);
    } catch (err) {
      onError(err);
    }
    cached = { at: Date.now(), value };
    return value;
  };
}
