// The OpenAI-compatible request and response shapes of vLLM's server (0.10 series), for the simulator's
// /v1/completions and /v1/chat/completions. Pure: token counts are estimated the way a BPE tokenizer splits
// text (estimateTokens) and the generated text is a fixed, deterministic sequence of words, one a token.
import { randomBytes } from 'node:crypto';
import { contextTooLong, errorBody, modelDoesNotExist } from './vllm-messages.js';

export interface GenerationRequest {
  chat: boolean;
  model: string;
  /** Prompt tokens of each choice (a completion may carry several prompts). */
  promptTokens: number[];
  maxTokens: number;
  /** Tokens generated per choice: max_tokens, or fewer when the model "emits EOS" (see completionLength). */
  completionTokens: number;
  /** "length" when max_tokens was reached, "stop" when the model stopped by itself (EOS). */
  finishReason: 'length' | 'stop';
  stream: boolean;
}

export type ParseOutcome =
  { ok: true; request: GenerationRequest } | { ok: false; status: number; body: string };

const WORDS = (
  'The quick brown fox jumps over the lazy dog while the simulated engine keeps its KV cache warm and ' +
  'answers every request with the same deterministic words'
).split(' ');

// GPT-2 / tiktoken-style pre-tokenization: contractions, a letter run with its leading space, a digit run, a
// symbol run, whitespace.
const PIECES = /'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * Tokens of a text, roughly as a BPE tokenizer (Llama 3, Qwen, GPT-4's cl100k) counts them: each word with
 * its leading space is one token up to 10 letters (" the", " which", " something"), longer words one per
 * 10 letters; digits go in groups of 3; symbols one per 3 characters; a whitespace run is one token.
 */
export function estimateTokens(text: string): number {
  let n = 0;
  for (const [piece] of text.matchAll(PIECES)) {
    const body = piece.replace(/^ /, '');
    if (body === '' || /^\s+$/.test(body)) n += 1;
    else if (/^\p{L}+$/u.test(body)) n += Math.ceil(body.length / 10);
    else if (/^\p{N}+$/u.test(body)) n += Math.ceil(body.length / 3);
    else n += Math.ceil(body.length / 3);
  }
  return Math.max(1, n);
}

/** A completion prompt's tokens: the text's, plus the BOS token vLLM's tokenizer adds (add_special_tokens). */
export function promptTokensOfText(text: string): number {
  return estimateTokens(text) + 1;
}

/** n generated "tokens", one word each. */
export function generatedText(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ` ${WORDS[i % WORDS.length] ?? 'token'}`;
  return s;
}

const bad = (message: string, status = 400, type = 'BadRequestError'): ParseOutcome => ({
  ok: false,
  status,
  body: errorBody(message, type, status),
});

function promptTokensOf(prompt: unknown): number[] | null {
  if (typeof prompt === 'string') return [promptTokensOfText(prompt)];
  if (Array.isArray(prompt) && prompt.length > 0) {
    if (prompt.every((p) => typeof p === 'number')) return [prompt.length];
    if (prompt.every((p) => typeof p === 'string')) return prompt.map((p) => promptTokensOfText(p));
    if (prompt.every((p) => Array.isArray(p) && p.every((t) => typeof t === 'number'))) {
      return prompt.map((p) => Math.max(1, p.length));
    }
  }
  return null;
}

function chatPromptTokens(messages: unknown): number | null {
  if (!Array.isArray(messages) || messages.length === 0) return null;
  let total = 1;
  for (const m of messages) {
    const o = m as { role?: unknown; content?: unknown } | null;
    if (!o || typeof o.role !== 'string') return null;
    const content =
      typeof o.content === 'string'
        ? o.content
        : Array.isArray(o.content)
          ? o.content
              .map((part: { text?: unknown }) => (typeof part?.text === 'string' ? part.text : ''))
              .join(' ')
          : '';
    total += 4 + (content === '' ? 0 : estimateTokens(content));
  }
  return total;
}

/**
 * How many tokens a request generates: all of max_tokens with ignore_eos; else the model "emits EOS" after
 * `eosAfter` tokens (its natural answer length; 0 = never), but not before min_tokens.
 */
export function completionLength(
  maxTokens: number,
  minTokens: number,
  ignoreEos: boolean,
  eosAfter: number,
): number {
  if (ignoreEos || eosAfter <= 0) return maxTokens;
  return Math.min(maxTokens, Math.max(minTokens, eosAfter));
}

export function parseGenerationRequest(
  raw: string,
  chat: boolean,
  servedModelNames: readonly string[],
  maxModelLen: number,
  /** The natural answer length: EOS after this many tokens unless ignore_eos (0 = never). */
  eosAfterTokens = 0,
): ParseOutcome {
  let body: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      return bad('Request body must be a JSON object.');
    body = parsed as Record<string, unknown>;
  } catch (e) {
    return bad(`JSON decode error: ${(e as Error).message}`);
  }
  const model = body.model === undefined || body.model === null ? servedModelNames[0] : body.model;
  if (typeof model !== 'string') return bad('model: Input should be a valid string');
  if (!servedModelNames.includes(model)) return bad(modelDoesNotExist(model), 404, 'NotFoundError');

  let promptTokens: number[];
  if (chat) {
    const t = chatPromptTokens(body.messages);
    if (t === null) return bad('messages: Field required (a non-empty list of {role, content})');
    promptTokens = [t];
  } else {
    const t = promptTokensOf(body.prompt);
    if (t === null) return bad('Either prompt or prompt_embeds must be provided and non-empty.');
    promptTokens = t;
  }

  const maxKey = chat && body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
  const rawMax = body[maxKey];
  let maxTokens: number;
  let finishReason: 'length' | 'stop' = 'length';
  if (rawMax === undefined || rawMax === null) {
    // Completions default to 16 tokens; chat generates until "stop" (the simulator stops after 32).
    maxTokens = chat ? 32 : 16;
    finishReason = chat ? 'stop' : 'length';
  } else if (typeof rawMax === 'number' && Number.isInteger(rawMax) && rawMax >= 1) {
    maxTokens = rawMax;
  } else {
    return bad(`${maxKey}: Input should be greater than or equal to 1`);
  }
  // vLLM's SamplingParams: min_tokens ≥ 0 and ≤ max_tokens; ignore_eos a boolean.
  const rawMin = body.min_tokens;
  let minTokens = 0;
  if (rawMin !== undefined && rawMin !== null) {
    if (typeof rawMin !== 'number' || !Number.isInteger(rawMin) || rawMin < 0)
      return bad(`min_tokens must be greater than or equal to 0, got ${JSON.stringify(rawMin)}.`);
    if (rawMin > maxTokens)
      return bad(`min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${rawMin}.`);
    minTokens = rawMin;
  }
  const rawIgnore = body.ignore_eos;
  if (rawIgnore !== undefined && rawIgnore !== null && typeof rawIgnore !== 'boolean')
    return bad('ignore_eos: Input should be a valid boolean');
  const ignoreEos = rawIgnore === true;
  const longest = Math.max(...promptTokens);
  if (longest + maxTokens > maxModelLen) return bad(contextTooLong(maxModelLen, longest, maxTokens));
  let completionTokens = maxTokens;
  if (finishReason === 'length') {
    completionTokens = completionLength(maxTokens, minTokens, ignoreEos, eosAfterTokens);
    if (completionTokens < maxTokens) finishReason = 'stop';
  }
  const n = body.n;
  if (n !== undefined && n !== 1 && !chat) {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
      return bad('n: Input should be greater than or equal to 1');
    promptTokens = promptTokens.flatMap((t) => Array.from({ length: n }, () => t));
  }
  return {
    ok: true,
    request: {
      chat,
      model,
      promptTokens,
      maxTokens,
      completionTokens,
      finishReason,
      stream: body.stream === true,
    },
  };
}

export function requestId(chat: boolean): string {
  return `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(16).toString('hex')}`;
}

export interface Usage {
  prompt_tokens: number;
  total_tokens: number;
  completion_tokens: number;
  prompt_tokens_details: null;
}

export function usageOf(req: GenerationRequest): Usage {
  const prompt = req.promptTokens.reduce((a, b) => a + b, 0);
  const completion = req.completionTokens * req.promptTokens.length;
  return {
    prompt_tokens: prompt,
    total_tokens: prompt + completion,
    completion_tokens: completion,
    prompt_tokens_details: null,
  };
}

export function responseBody(req: GenerationRequest, id: string, created: number): string {
  const text = generatedText(req.completionTokens);
  const usage = usageOf(req);
  if (req.chat) {
    return JSON.stringify({
      id,
      object: 'chat.completion',
      created,
      model: req.model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: text.trimStart(),
            refusal: null,
            annotations: null,
            audio: null,
            function_call: null,
            tool_calls: [],
            reasoning_content: null,
          },
          logprobs: null,
          finish_reason: req.finishReason,
          stop_reason: null,
        },
      ],
      service_tier: null,
      system_fingerprint: null,
      usage,
      prompt_logprobs: null,
      kv_transfer_params: null,
    });
  }
  return JSON.stringify({
    id,
    object: 'text_completion',
    created,
    model: req.model,
    choices: req.promptTokens.map((_, index) => ({
      index,
      text,
      logprobs: null,
      finish_reason: req.finishReason,
      stop_reason: null,
      prompt_logprobs: null,
    })),
    service_tier: null,
    system_fingerprint: null,
    usage,
    kv_transfer_params: null,
  });
}

/** Server-sent events for stream=true: one chunk per word, then [DONE]. */
export function streamEvents(req: GenerationRequest, id: string, created: number): string[] {
  const words = generatedText(req.completionTokens).match(/ \S+/g) ?? [];
  const object = req.chat ? 'chat.completion.chunk' : 'text_completion';
  const events = words.map((w, i) => {
    const last = i === words.length - 1;
    const choice = req.chat
      ? {
          index: 0,
          delta: i === 0 ? { role: 'assistant', content: w.trimStart() } : { content: w },
          logprobs: null,
          finish_reason: last ? req.finishReason : null,
        }
      : {
          index: 0,
          text: w,
          logprobs: null,
          finish_reason: last ? req.finishReason : null,
          stop_reason: null,
        };
    return `data: ${JSON.stringify({ id, object, created, model: req.model, choices: [choice] })}\n\n`;
  });
  return [...events, 'data: [DONE]\n\n'];
}
