// Failures as one line a person can act on: the activity's own message rather than the wrapper's.
import { ActivityFailure, ApplicationFailure, TimeoutFailure, isCancellation } from '@temporalio/workflow';

export function describeFailure(err: unknown): string {
  if (isCancellation(err)) return 'cancelled';
  if (err instanceof ActivityFailure) {
    const cause = err.cause;
    if (cause instanceof TimeoutFailure)
      return `${err.activityType} timed out (${timeoutName(cause.timeoutType)})`;
    if (cause) return `${err.activityType}: ${describeFailure(cause)}`;
    return `${err.activityType} failed`;
  }
  if (err instanceof ApplicationFailure) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

function timeoutName(type: TimeoutFailure['timeoutType']): string {
  if (type === undefined) return 'timeout';
  return type === 'HEARTBEAT' ? 'no heartbeat' : type.toLowerCase().replaceAll('_', ' ');
}
