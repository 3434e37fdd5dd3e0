// Is the service up? `GET /health` polled until a deadline (a vLLM that is loading does not listen yet:
// connection refused is the normal answer for a while), and one real completion request as the probe.
// Global fetch (Node ≥ 20) with AbortSignal.timeout per request; the caller's AbortSignal stops either at once.

/** The service did not answer healthy by the deadline. */
export class HealthTimeoutError extends Error {
  constructor(
    readonly deadlineMs: number,
    /** What the last poll saw: "connection refused", "HTTP 500", ... */
    readonly lastAnswer: string,
    readonly polls: number,
  ) {
    super(`not healthy within ${deadlineMs} ms (${polls} polls, last: ${lastAnswer})`);
    this.name = 'HealthTimeoutError';
  }
}

/** The probe request did not get a completion. */
export class ProbeError extends Error {
  constructor(
    message: string,
    /** HTTP status, or null when no response came. */
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'ProbeError';
  }
}

export const DEFAULT_POLL_INTERVAL_MS = 50;
const MAX_REQUEST_MS = 2_000;

export const joinUrl = (baseUrl: string, path: string): string => `${baseUrl.replace(/\/+$/, '')}${path}`;

/** Why a signal fired, as an Error: an activity's CancelledFailure, or a plain "aborted". */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new Error(typeof reason === 'string' ? `aborted: ${reason}` : 'aborted');
}

/** Throws the signal's reason when it has fired. */
function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      if (signal) reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Why a fetch failed, in a few words: the socket error code when there is one. */
export function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return 'no answer in time';
  const code = e.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'connection reset';
  return code ?? e.cause?.message ?? e.message;
}

function requestSignal(timeoutMs: number, signal: AbortSignal | undefined): AbortSignal {
  const timeout = AbortSignal.timeout(Math.max(1, Math.round(timeoutMs)));
  return signal ? AbortSignal.any([timeout, signal]) : timeout;
}

/** One GET /health: 'ok' or what went wrong. Rethrows only the caller's abort. */
export async function checkHealth(
  baseUrl: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ ok: true } | { ok: false; answer: string }> {
  try {
    const res = await fetch(joinUrl(baseUrl, '/health'), { signal: requestSignal(timeoutMs, signal) });
    await res.arrayBuffer().catch(() => undefined);
    return res.status === 200 ? { ok: true } : { ok: false, answer: `HTTP ${res.status}` };
  } catch (err) {
    throwIfAborted(signal);
    return { ok: false, answer: describeFetchError(err) };
  }
}

export interface WaitHealthyOptions {
  baseUrl: string;
  /** How long to keep polling, ms from the call. At least one poll is made, even with 0. */
  deadlineMs: number;
  /** Stops the wait at once, rejecting with the signal's reason. */
  signal?: AbortSignal;
  /** Pause between polls, ms (default 50: the resolution of the measured time). */
  intervalMs?: number;
  /** Called after every poll (for activity heartbeats). */
  onPoll?: (progress: { elapsedMs: number; polls: number; lastAnswer: string }) => void;
}

/**
 * Poll `GET /health` until it answers 200; resolves with the time from the call to that answer. Rejects with
 * {@link HealthTimeoutError} at the deadline, or with the signal's reason when it is aborted.
 */
export async function waitHealthy(opts: WaitHealthyOptions): Promise<{ healthyAfterMs: number }> {
  const { baseUrl, deadlineMs, signal } = opts;
  const intervalMs = opts.intervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const started = performance.now();
  const deadline = started + Math.max(0, deadlineMs);
  let polls = 0;
  let lastAnswer = 'no poll yet';
  for (;;) {
    throwIfAborted(signal);
    const left = deadline - performance.now();
    const answer = await checkHealth(baseUrl, Math.min(MAX_REQUEST_MS, Math.max(left, 100)), signal);
    polls++;
    const elapsedMs = performance.now() - started;
    if (answer.ok) return { healthyAfterMs: Math.round(elapsedMs) };
    lastAnswer = answer.answer;
    opts.onPoll?.({ elapsedMs: Math.round(elapsedMs), polls, lastAnswer });
    const wait = Math.min(intervalMs, deadline - performance.now());
    if (wait <= 0) throw new HealthTimeoutError(Math.round(deadlineMs), lastAnswer, polls);
    await sleep(wait, signal);
  }
}

export interface ProbeOptions {
  baseUrl: string;
  /** The served model name (`served-model-name`, else `model`). */
  model: string;
  timeoutMs: number;
  /** vLLM's `api-key`, sent as a bearer token when the server requires one. */
  apiKey?: string | null;
  signal?: AbortSignal;
}

const excerpt = (text: string): string => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat || '(empty body)';
};

/**
 * One real request: `POST /v1/completions {model, prompt: "ping", max_tokens: 1}`, which must answer 200 with
 * an OpenAI completion object. Resolves with its latency; rejects with {@link ProbeError}.
 */
export async function probeCompletion(opts: ProbeOptions): Promise<{ latencyMs: number }> {
  const url = joinUrl(opts.baseUrl, '/v1/completions');
  const started = performance.now();
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}),
      },
      body: JSON.stringify({ model: opts.model, prompt: 'ping', max_tokens: 1 }),
      signal: requestSignal(opts.timeoutMs, opts.signal),
    });
    text = await res.text();
  } catch (err) {
    throwIfAborted(opts.signal);
    const why = describeFetchError(err);
    throw new ProbeError(
      `probe POST ${url} failed: ${why === 'no answer in time' ? `no answer within ${opts.timeoutMs} ms` : why}`,
      null,
    );
  }
  const latencyMs = Math.round(performance.now() - started);
  if (res.status !== 200) {
    throw new ProbeError(`probe POST ${url} answered HTTP ${res.status}: ${excerpt(text)}`, res.status);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ProbeError(`probe POST ${url} answered 200 but not JSON: ${excerpt(text)}`, res.status);
  }
  const o = body as { object?: unknown; choices?: unknown };
  const first = Array.isArray(o.choices) ? (o.choices[0] as { text?: unknown } | undefined) : undefined;
  if (o.object !== 'text_completion' || typeof first?.text !== 'string') {
    throw new ProbeError(
      `probe POST ${url} answered 200 without a completion (expected object "text_completion" with choices[0].text): ${excerpt(text)}`,
      res.status,
    );
  }
  return { latencyMs };
}

/** The first model id `GET /v1/models` lists (for a config that leaves the model to the command line). */
export async function firstServedModel(
  baseUrl: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<string | null> {
  try {
    const res = await fetch(joinUrl(baseUrl, '/v1/models'), { signal: requestSignal(timeoutMs, signal) });
    if (res.status !== 200) return null;
    const body = (await res.json()) as { data?: { id?: unknown }[] };
    const id = body.data?.[0]?.id;
    return typeof id === 'string' ? id : null;
  } catch {
    throwIfAborted(signal);
    return null;
  }
}
