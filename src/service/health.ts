// Is the service up? `GET /health` polled until a deadline (a vLLM that is loading does not listen yet:
// connection refused is the normal answer for a while), and one realistic completion request as the probe
// (its size: src/service/probe-size.ts).
// Global fetch (Node ≥ 20) with AbortSignal.timeout per request; the caller's AbortSignal stops either at once.

import { probePrompt } from './probe-size.js';
import { requestSignal } from './request-signal.js';

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
    /** context: the request exceeds the candidate's max-model-len; short: fewer tokens than asked for. */
    readonly kind: 'failed' | 'context' | 'short' = 'failed',
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
  /** About how many prompt tokens to send (default 512; see src/service/probe-size.ts). */
  promptTokens?: number;
  /** How many tokens the service must generate (default 128). */
  outputTokens?: number;
}

export interface ProbeResult {
  latencyMs: number;
  /** The prompt and output sizes asked for. */
  askedPromptTokens: number;
  askedOutputTokens: number;
  /** What the service counted (`usage`), when it answered with one. */
  promptTokens: number | null;
  completionTokens: number | null;
}

const excerpt = (text: string, max = 200): string => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat || '(empty body)';
};

/** The `message` of vLLM's error body: `{"object":"error","message":…}` (≤ 0.10) or `{"error":{"message":…}}`. */
function errorMessage(text: string): string | null {
  try {
    const body = JSON.parse(text) as { message?: unknown; error?: { message?: unknown } | string };
    if (typeof body.message === 'string') return body.message;
    if (typeof body.error === 'string') return body.error;
    if (body.error && typeof body.error.message === 'string') return body.error.message;
  } catch {
    // not JSON
  }
  return null;
}

/** The context length a "maximum context length is N tokens" refusal names (vLLM, all wordings), or null. */
export function refusedContextLength(message: string): number | null {
  const m = /maximum (?:context|model) length (?:is |of )(\d[\d,]*)/i.exec(message);
  return m ? Number((m[1] ?? '').replace(/,/g, '')) : null;
}

const tokens = (n: number): string => Math.round(n).toLocaleString('en-US');

/**
 * One realistic request: `POST /v1/completions` with a prompt of about `promptTokens` tokens and
 * `max_tokens = min_tokens = outputTokens`, `ignore_eos: true` (vLLM's sampling parameters), so that the
 * service must really generate that many tokens. It must answer 200 with an OpenAI completion object whose
 * `usage.completion_tokens` (when present) is the full output. A 400 naming the model's maximum context
 * length is the candidate refusing a request of the service's own size. Resolves with the latency and the
 * sizes; rejects with {@link ProbeError}.
 */
export async function probeCompletion(opts: ProbeOptions): Promise<ProbeResult> {
  const url = joinUrl(opts.baseUrl, '/v1/completions');
  const promptTokens = Math.max(1, Math.round(opts.promptTokens ?? 512));
  const outputTokens = Math.max(1, Math.round(opts.outputTokens ?? 128));
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
      body: JSON.stringify({
        model: opts.model,
        prompt: probePrompt(promptTokens),
        max_tokens: outputTokens,
        min_tokens: outputTokens,
        ignore_eos: true,
        stream: false,
      }),
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
  const size = `a ${tokens(promptTokens)}-token prompt and ${tokens(outputTokens)} tokens out`;
  if (res.status !== 200) {
    const message = errorMessage(text);
    const context = message !== null ? refusedContextLength(message) : null;
    if (res.status === 400 && context !== null) {
      throw new ProbeError(
        `probe POST ${url} answered HTTP 400: the candidate's context (max-model-len ${tokens(context)}) is too short for ${size}, a request of the service's own size: ${excerpt(message ?? text, 300)}`,
        res.status,
        'context',
      );
    }
    throw new ProbeError(
      `probe POST ${url} answered HTTP ${res.status}: ${excerpt(message ?? text)}`,
      res.status,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ProbeError(`probe POST ${url} answered 200 but not JSON: ${excerpt(text)}`, res.status);
  }
  const o = body as { object?: unknown; choices?: unknown; usage?: unknown };
  const first = Array.isArray(o.choices)
    ? (o.choices[0] as { text?: unknown; finish_reason?: unknown } | undefined)
    : undefined;
  if (o.object !== 'text_completion' || typeof first?.text !== 'string') {
    throw new ProbeError(
      `probe POST ${url} answered 200 without a completion (expected object "text_completion" with choices[0].text): ${excerpt(text)}`,
      res.status,
    );
  }
  const usage = (o.usage ?? {}) as { prompt_tokens?: unknown; completion_tokens?: unknown };
  const count = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const completion = count(usage.completion_tokens);
  if (completion !== null && completion < outputTokens) {
    const finish = typeof first.finish_reason === 'string' ? `, finish_reason "${first.finish_reason}"` : '';
    throw new ProbeError(
      `probe POST ${url} answered 200 with ${tokens(completion)} of the ${tokens(outputTokens)} tokens asked for (${size}${finish}): the service stopped short of a request of its own size`,
      res.status,
      'short',
    );
  }
  return {
    latencyMs,
    askedPromptTokens: promptTokens,
    askedOutputTokens: outputTokens,
    promptTokens: count(usage.prompt_tokens),
    completionTokens: completion,
  };
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
