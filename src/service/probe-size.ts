// How large the canary's probe request is: a prompt of about P tokens and O generated tokens, so that a
// candidate that cripples the service (a max-model-len of 16, a context too short for the service's own
// requests) fails the probe instead of passing a one-token "ping".
//
// P and O come from KLR_PROBE_PROMPT_TOKENS / KLR_PROBE_OUTPUT_TOKENS when set, else from the service's own
// recent traffic: vLLM's Prometheus histograms `vllm:request_prompt_tokens` and
// `vllm:request_generation_tokens` (vllm/v1/metrics/loggers.py, PrometheusStatLogger: one observation per
// finished request, buckets build_1_2_5_buckets(max_model_len) = 1, 2, 5, 10, 20, 50, … ≤ max_model_len,
// labels model_name and engine), read from the live service before the canary restarts it (a restart resets
// them). The 90th percentile is taken as Prometheus' histogram_quantile does: linear within the bucket.
// Without the metrics (service down, too few requests, not vLLM) the defaults are 512 and 128.
//
// The sizes are capped by the CURRENT config's max-model-len: a probe the running config could not serve
// says nothing about the candidate.
import { parseServingConfig } from './vllm-config.js';
import { requestSignal } from './request-signal.js';

export const DEFAULT_PROBE_PROMPT_TOKENS = 512;
export const DEFAULT_PROBE_OUTPUT_TOKENS = 128;
/** Which share of the service's requests the probe is at least as large as. */
export const PROBE_QUANTILE = 0.9;
/** Fewer finished requests than this in the histogram: not enough traffic to size the probe by. */
export const MIN_OBSERVED_REQUESTS = 10;
/** The longest output taken from traffic: a long decode only makes the probe slow, not more telling. */
export const MAX_TRAFFIC_OUTPUT_TOKENS = 1024;
/** Part of (max-model-len − output) the prompt may use: room for the tokenizer counting a little more. */
export const PROMPT_SHARE_OF_CONTEXT = 0.95;

export const PROMPT_HISTOGRAM = 'vllm:request_prompt_tokens';
export const GENERATION_HISTOGRAM = 'vllm:request_generation_tokens';

export interface Histogram {
  /** Cumulative counts by upper bound, ascending; the last bound is +Infinity. */
  buckets: { le: number; count: number }[];
  /** Observations (the +Inf bucket). */
  count: number;
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function leOf(labels: string): number | null {
  for (const m of labels.matchAll(LABEL)) {
    if (m[1] !== 'le') continue;
    const v = m[2] ?? '';
    if (v === '+Inf' || v === 'Inf') return Infinity;
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/**
 * One histogram from Prometheus text exposition, summed over its series (several engines or models):
 * `name_bucket{…,le="…"} value`. Null when the text has no bucket of it.
 */
export function parseHistogram(text: string, name: string): Histogram | null {
  const prefix = `${name}_bucket`;
  const byLe = new Map<number, number>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith(prefix) || line.startsWith('#')) continue;
    const rest = line.slice(prefix.length);
    let labels = '';
    let tail = rest;
    if (rest.startsWith('{')) {
      const close = rest.lastIndexOf('}');
      if (close < 0) continue;
      labels = rest.slice(1, close);
      tail = rest.slice(close + 1);
    } else if (!/^\s/.test(rest)) continue; // another metric with this prefix
    const le = leOf(labels);
    const value = Number(tail.trim().split(/\s+/)[0]);
    if (le === null || !Number.isFinite(value) || value < 0) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + value);
  }
  if (byLe.size === 0) return null;
  const buckets = [...byLe.entries()].sort(([a], [b]) => a - b).map(([le, count]) => ({ le, count }));
  // Cumulative by definition; a scrape taken mid-update can break that: make it monotone.
  for (let i = 1; i < buckets.length; i++) {
    const b = buckets[i] as { le: number; count: number };
    b.count = Math.max(b.count, (buckets[i - 1] as { count: number }).count);
  }
  const last = buckets[buckets.length - 1] as { le: number; count: number };
  if (last.le !== Infinity) buckets.push({ le: Infinity, count: last.count });
  return { buckets, count: (buckets[buckets.length - 1] as { count: number }).count };
}

/**
 * The q-quantile as Prometheus' histogram_quantile computes it: the bucket holding rank q × count, linear
 * within it (the first bucket starts at 0); in the +Inf bucket, the highest finite bound. Null when empty.
 */
export function histogramQuantile(q: number, h: Histogram): number | null {
  if (!(h.count > 0)) return null;
  const rank = q * h.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const { le, count } of h.buckets) {
    if (count >= rank && count > prevCount) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / (count - prevCount);
    }
    if (le !== Infinity) prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

export interface ProbeSize {
  promptTokens: number;
  outputTokens: number;
  /** Where the sizes came from, for the canary's reason. */
  source: string;
}

export interface ProbeSizeInput {
  /** KLR_PROBE_PROMPT_TOKENS / KLR_PROBE_OUTPUT_TOKENS (null: from traffic). */
  settings: { promptTokens: number | null; outputTokens: number | null } | undefined;
  /** The live service's /metrics text, or null when it could not be read. */
  metricsText: string | null;
  /** Why the metrics are missing, when they are. */
  metricsWhy?: string | null;
  /** max-model-len of the config running now (the one restored if the candidate fails); null: unknown. */
  currentMaxModelLen: number | null;
}

const count = (n: number): string => Math.round(n).toLocaleString('en-US');

/** The probe's size: settings, else the service's p90, else the defaults; capped by the current context. */
export function chooseProbeSize(input: ProbeSizeInput): ProbeSize {
  const set = input.settings ?? { promptTokens: null, outputTokens: null };
  const parts: string[] = [];
  const fromTraffic = (name: string): { value: number; n: number } | null => {
    if (input.metricsText === null) return null;
    const h = parseHistogram(input.metricsText, name);
    if (h === null || h.count < MIN_OBSERVED_REQUESTS) return null;
    const v = histogramQuantile(PROBE_QUANTILE, h);
    return v === null ? null : { value: Math.max(1, Math.ceil(v - 1e-9)), n: h.count };
  };
  const noTraffic = (): string => {
    if (input.metricsText === null)
      return `no /metrics from the service${input.metricsWhy ? ` (${input.metricsWhy})` : ''}`;
    return `fewer than ${MIN_OBSERVED_REQUESTS} requests in the service's /metrics`;
  };

  let prompt: number;
  let output: number;
  const p = set.promptTokens === null ? fromTraffic(PROMPT_HISTOGRAM) : null;
  const o = set.outputTokens === null ? fromTraffic(GENERATION_HISTOGRAM) : null;
  if (set.promptTokens !== null) {
    prompt = set.promptTokens;
    parts.push('prompt from KLR_PROBE_PROMPT_TOKENS');
  } else if (p !== null) {
    prompt = p.value;
    parts.push(`prompt p${PROBE_QUANTILE * 100} of the service's last ${count(p.n)} requests`);
  } else {
    prompt = DEFAULT_PROBE_PROMPT_TOKENS;
    parts.push(`default prompt: ${noTraffic()}`);
  }
  if (set.outputTokens !== null) {
    output = set.outputTokens;
    parts.push('output from KLR_PROBE_OUTPUT_TOKENS');
  } else if (o !== null) {
    output = Math.min(o.value, MAX_TRAFFIC_OUTPUT_TOKENS);
    parts.push(
      `output p${PROBE_QUANTILE * 100} of ${count(o.n)} requests${o.value > output ? ` (${count(o.value)}, capped at ${count(MAX_TRAFFIC_OUTPUT_TOKENS)})` : ''}`,
    );
  } else {
    output = DEFAULT_PROBE_OUTPUT_TOKENS;
    parts.push(set.promptTokens === null && p === null ? 'default output' : `default output: ${noTraffic()}`);
  }

  const len = input.currentMaxModelLen;
  if (len !== null && len >= 2) {
    const maxOutput = Math.max(1, Math.floor(len / 2));
    if (output > maxOutput) {
      parts.push(`output capped at half the current max-model-len ${count(len)}`);
      output = maxOutput;
    }
    const maxPrompt = Math.max(1, Math.floor((len - output) * PROMPT_SHARE_OF_CONTEXT));
    if (prompt > maxPrompt) {
      parts.push(`prompt capped at ${count(maxPrompt)} to fit the current max-model-len ${count(len)}`);
      prompt = maxPrompt;
    }
  }
  return { promptTokens: prompt, outputTokens: output, source: parts.join('; ') };
}

/**
 * Words that are one token each for the common tokenizers (Llama 2 SentencePiece, Llama 3 / tiktoken,
 * Qwen, Mistral, GPT-NeoX), with the leading space those tokenizers fold into the word.
 */
export const PROBE_WORDS = [
  'the',
  'of',
  'and',
  'to',
  'in',
  'is',
  'that',
  'for',
  'it',
  'as',
  'was',
  'with',
  'be',
  'on',
  'not',
  'he',
  'by',
  'are',
  'this',
  'at',
  'from',
  'but',
  'have',
  'an',
  'they',
  'which',
  'one',
  'you',
  'were',
  'all',
  'we',
  'can',
] as const;

/**
 * A prompt of about `tokens` tokens: tokens − 1 common words (the tokenizer adds a BOS token for most
 * models), in a fixed order, so that the same size always gives the same text.
 */
export function probePrompt(tokens: number): string {
  const words = Math.max(1, Math.round(tokens) - 1);
  const out: string[] = new Array<string>(words);
  for (let i = 0; i < words; i++) out[i] = PROBE_WORDS[(i * 7 + Math.floor(i / 32)) % 32] as string;
  return out.join(' ');
}

/** max-model-len when the config file sets it (the running config's context), else null. */
export function configuredMaxModelLen(yamlText: string, source: string): number | null {
  try {
    const file = parseServingConfig(yamlText, source);
    return file.explicit.includes('max-model-len') ? file.serving.maxModelLen : null;
  } catch {
    return null;
  }
}

export interface ServiceTraffic {
  metricsText: string | null;
  /** Why there is no metrics text. */
  metricsWhy: string | null;
  /** max_model_len the running server reports on /v1/models, or null. */
  servedMaxModelLen: number | null;
}

/**
 * The live service's /metrics and its max_model_len from /v1/models, each within `timeoutMs`. Never throws
 * but for the caller's abort: a service that is down just gives nulls.
 */
export async function readServiceTraffic(opts: {
  baseUrl: string;
  apiKey?: string | null;
  timeoutMs: number;
  signal?: AbortSignal;
}): Promise<ServiceTraffic> {
  const base = opts.baseUrl.replace(/\/+$/, '');
  const metrics = (async (): Promise<{ text: string | null; why: string | null }> => {
    try {
      const res = await fetch(`${base}/metrics`, { signal: requestSignal(opts.timeoutMs, opts.signal) });
      const text = await res.text();
      return res.status === 200 ? { text, why: null } : { text: null, why: `HTTP ${res.status}` };
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const e = err as Error & { cause?: { code?: string } };
      return {
        text: null,
        why: e.cause?.code ?? (e.name === 'TimeoutError' ? 'no answer in time' : e.message),
      };
    }
  })();
  const models = (async (): Promise<number | null> => {
    try {
      const res = await fetch(`${base}/v1/models`, {
        headers: opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {},
        signal: requestSignal(opts.timeoutMs, opts.signal),
      });
      if (res.status !== 200) return null;
      const body = (await res.json()) as { data?: { max_model_len?: unknown }[] };
      const len = body.data?.[0]?.max_model_len;
      return typeof len === 'number' && Number.isSafeInteger(len) && len > 0 ? len : null;
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      return null;
    }
  })();
  const [m, servedMaxModelLen] = await Promise.all([metrics, models]);
  return { metricsText: m.text, metricsWhy: m.why, servedMaxModelLen };
}

/**
 * Size the probe for a canary: read the live service (before its restart), then choose. The config file's
 * max-model-len wins over the server's report (the file is what a restore puts back).
 */
export async function planProbe(opts: {
  baseUrl: string;
  apiKey?: string | null;
  settings: ProbeSizeInput['settings'];
  /** The live config's YAML text and path (for its max-model-len). */
  configText: string;
  configPath: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}): Promise<ProbeSize> {
  const set = opts.settings;
  const needTraffic = !set || set.promptTokens === null || set.outputTokens === null;
  const configured = configuredMaxModelLen(opts.configText, opts.configPath);
  const traffic =
    needTraffic || configured === null
      ? await readServiceTraffic({
          baseUrl: opts.baseUrl,
          apiKey: opts.apiKey ?? null,
          timeoutMs: opts.timeoutMs ?? 2_000,
          ...(opts.signal ? { signal: opts.signal } : {}),
        })
      : { metricsText: null, metricsWhy: null, servedMaxModelLen: null };
  return chooseProbeSize({
    settings: set,
    metricsText: traffic.metricsText,
    metricsWhy: traffic.metricsWhy,
    currentMaxModelLen: configured ?? traffic.servedMaxModelLen,
  });
}
