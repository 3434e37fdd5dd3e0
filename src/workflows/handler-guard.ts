// Message handlers that cannot fail a workflow task. In the TypeScript SDK an error other than a Temporal
// failure thrown by a signal handler, or by an update handler after its validator, fails the workflow task,
// and the task fails again on every retry because the message stays in the history: one bad message would
// wedge the workflow for good, canary in flight included. Payloads are checked before use, so these guards
// are the last line: whatever still goes wrong is recorded and refused, never thrown at the SDK.
import { ApplicationFailure, TemporalFailure, isCancellation } from '@temporalio/workflow';

/** ApplicationFailure type of an update whose handler failed on its payload. */
export const MESSAGE_REFUSED = 'MessageRefused';

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err)).slice(0, 500);

/** A signal handler that records what went wrong (`onError`) instead of throwing. */
export function guardSignal<A extends unknown[]>(
  handler: (...args: A) => void | Promise<void>,
  onError: (message: string) => void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await handler(...args);
    } catch (err) {
      if (isCancellation(err)) throw err;
      onError(messageOf(err));
    }
  };
}

/** An update handler whose unexpected errors fail the update (the caller sees why), never the task. */
export function guardUpdate<A extends unknown[], R>(
  name: string,
  handler: (...args: A) => R | Promise<R>,
  onError: (message: string) => void,
): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await handler(...args);
    } catch (err) {
      if (err instanceof TemporalFailure || isCancellation(err)) throw err;
      onError(messageOf(err));
      throw ApplicationFailure.nonRetryable(`${name} refused: ${messageOf(err)}`, MESSAGE_REFUSED);
    }
  };
}
