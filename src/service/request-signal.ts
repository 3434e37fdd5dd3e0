// The signal of one HTTP request to the service: it gives up after its timeout, or with the caller.

/** Aborted after `timeoutMs`, or when the caller's `signal` aborts. */
export function requestSignal(timeoutMs: number, signal: AbortSignal | undefined): AbortSignal {
  const timeout = AbortSignal.timeout(Math.max(1, Math.round(timeoutMs)));
  return signal ? AbortSignal.any([timeout, signal]) : timeout;
}
