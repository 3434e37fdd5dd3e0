// The canary's probe: its size (settings, else the service's own traffic from vLLM's /metrics histograms,
// else 512 / 128 tokens), the prompt it builds, and what it makes of the answers, against a real local HTTP
// server: a context refusal (the crippled candidate), a short answer, a full one.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ProbeError, probeCompletion, refusedContextLength } from '../../src/service/health.js';
import {
  DEFAULT_PROBE_OUTPUT_TOKENS,
  DEFAULT_PROBE_PROMPT_TOKENS,
  GENERATION_HISTOGRAM,
  PROBE_WORDS,
  PROMPT_HISTOGRAM,
  chooseProbeSize,
  configuredMaxModelLen,
  histogramQuantile,
  parseHistogram,
  planProbe,
  probePrompt,
} from '../../src/service/probe-size.js';
import { renderMetrics, tokenHistogram, observe } from '../../sim/lib/metrics.js';
import { estimateTokens, promptTokensOfText } from '../../sim/lib/openai.js';
import { contextTooLong } from '../../sim/lib/vllm-messages.js';

const METRICS = readFileSync(
  fileURLToPath(new URL('../fixtures/metrics/vllm-0.10-metrics.txt', import.meta.url)),
  'utf8',
);

describe("probe size from the service's traffic", () => {
  test('the histograms of a vLLM 0.10 /metrics page, and their 90th percentiles', () => {
    const prompt = parseHistogram(METRICS, PROMPT_HISTOGRAM);
    assert.ok(prompt);
    assert.equal(prompt.count, 2000);
    assert.equal(prompt.buckets.length, 13);
    assert.deepEqual(prompt.buckets.at(-1), { le: Infinity, count: 2000 });
    // rank 1800 lies in (1000, 2000]: 1000 + 1000 × (1800 − 1702) / (1931 − 1702) = 1427.9
    assert.equal(histogramQuantile(0.9, prompt)?.toFixed(1), '1427.9');
    const gen = parseHistogram(METRICS, GENERATION_HISTOGRAM);
    assert.ok(gen);
    // rank 1800 in (200, 500]: 200 + 300 × 210 / 348 = 381.0
    assert.equal(histogramQuantile(0.9, gen)?.toFixed(1), '381.0');
    assert.equal(parseHistogram(METRICS, 'vllm:request_params_n'), null, 'absent: null');
  });

  test('the sizes: p90 of the traffic, rounded up, with where they came from', () => {
    const size = chooseProbeSize({
      settings: { promptTokens: null, outputTokens: null },
      metricsText: METRICS,
      currentMaxModelLen: 8192,
    });
    assert.deepEqual(size, {
      promptTokens: 1428,
      outputTokens: 382,
      source: "prompt p90 of the service's last 2,000 requests; output p90 of 2,000 requests",
    });
  });

  test('several engines (data parallel) are summed; a +Inf-only tail gives the highest finite bound', () => {
    const twoEngines = `${METRICS}\n${METRICS.replace(/engine="0"/g, 'engine="1"')}`;
    assert.equal(parseHistogram(twoEngines, PROMPT_HISTOGRAM)?.count, 4000);
    const tail = [
      'vllm:request_prompt_tokens_bucket{le="10.0",model_name="m"} 1.0',
      'vllm:request_prompt_tokens_bucket{le="+Inf",model_name="m"} 20.0',
    ].join('\n');
    const h = parseHistogram(tail, PROMPT_HISTOGRAM);
    assert.ok(h);
    assert.equal(histogramQuantile(0.9, h), 10);
  });

  test("the simulator's /metrics histograms read back the same way", () => {
    const prompt = tokenHistogram(8192);
    const generation = tokenHistogram(8192);
    for (let i = 1; i <= 100; i++) {
      observe(prompt, i * 10); // 10 … 1000
      observe(generation, 64);
    }
    const text = renderMetrics(
      'm',
      {
        running: 0,
        waiting: 0,
        kvCacheUsage: 0,
        promptTokens: 50500,
        generationTokens: 6400,
        successByReason: { stop: 0, length: 100, abort: 0 },
        preemptions: 0,
        createdAt: 1_700_000_000,
        requestPromptTokens: prompt,
        requestGenerationTokens: generation,
      },
      null,
    );
    assert.match(text, /^# TYPE vllm:request_prompt_tokens histogram$/m);
    assert.match(text, /^vllm:request_prompt_tokens_bucket\{engine="0",le="1\.0",model_name="m"\} 0\.0$/m);
    assert.match(
      text,
      /^vllm:request_prompt_tokens_bucket\{engine="0",le="5000\.0",model_name="m"\} 100\.0$/m,
    );
    assert.match(text, /^vllm:request_prompt_tokens_sum\{engine="0",model_name="m"\} 50500\.0$/m);
    assert.doesNotMatch(text, /le="10000\.0"/, 'buckets stop at max-model-len');
    const size = chooseProbeSize({
      settings: undefined,
      metricsText: text,
      currentMaxModelLen: 8192,
    });
    // 90 of 100 requests are ≤ 900: rank 90 in (500, 1000] = 500 + 500 × (90 − 50) / 50 = 900
    assert.equal(size.promptTokens, 900);
    // all 100 in (50, 100]: 50 + 50 × 90 / 100 = 95
    assert.equal(size.outputTokens, 95);
  });

  test('settings win; too little traffic or no /metrics falls back to 512 / 128 and says why', () => {
    assert.deepEqual(
      chooseProbeSize({
        settings: { promptTokens: 2000, outputTokens: 64 },
        metricsText: METRICS,
        currentMaxModelLen: 8192,
      }),
      {
        promptTokens: 2000,
        outputTokens: 64,
        source: 'prompt from KLR_PROBE_PROMPT_TOKENS; output from KLR_PROBE_OUTPUT_TOKENS',
      },
    );
    const few = METRICS.replace(/ 2000\.0$/gm, ' 9.0').replace(/ (1[0-9]{3}|[1-9][0-9]{1,2})\.0$/gm, ' 9.0');
    const quiet = chooseProbeSize({ settings: undefined, metricsText: few, currentMaxModelLen: null });
    assert.equal(quiet.promptTokens, DEFAULT_PROBE_PROMPT_TOKENS);
    assert.equal(quiet.outputTokens, DEFAULT_PROBE_OUTPUT_TOKENS);
    assert.match(
      quiet.source,
      /^default prompt: fewer than 10 requests in the service's \/metrics; default output$/,
    );
    const down = chooseProbeSize({
      settings: undefined,
      metricsText: null,
      metricsWhy: 'ECONNREFUSED',
      currentMaxModelLen: null,
    });
    assert.equal(down.source, 'default prompt: no /metrics from the service (ECONNREFUSED); default output');
  });

  test('capped by the current max-model-len: a probe the running config cannot serve says nothing', () => {
    const size = chooseProbeSize({
      settings: { promptTokens: 100_000, outputTokens: 128 },
      metricsText: null,
      currentMaxModelLen: 4096,
    });
    assert.equal(size.outputTokens, 128);
    assert.equal(size.promptTokens, Math.floor((4096 - 128) * 0.95)); // 3769
    assert.match(size.source, /prompt capped at 3,769 to fit the current max-model-len 4,096/);
    const tiny = chooseProbeSize({
      settings: { promptTokens: null, outputTokens: 5000 },
      metricsText: null,
      currentMaxModelLen: 2048,
    });
    assert.equal(tiny.outputTokens, 1024);
    assert.ok(tiny.promptTokens + tiny.outputTokens <= 2048);
  });

  test("the config file's max-model-len, in either spelling and vLLM's human-readable form", () => {
    assert.equal(configuredMaxModelLen('model: m\nmax-model-len: 8192\n', 'c.yaml'), 8192);
    assert.equal(configuredMaxModelLen('model: m\nmax_model_len: 32K\n', 'c.yaml'), 32768);
    assert.equal(configuredMaxModelLen('model: m\n', 'c.yaml'), null);
    assert.equal(configuredMaxModelLen('model: [x\n', 'c.yaml'), null);
  });
});

describe('the probe prompt', () => {
  test('about P tokens: P − 1 one-token words (the tokenizer adds BOS), the same text for the same size', () => {
    for (const p of [1, 2, 17, 512, 1428, 8000]) {
      const text = probePrompt(p);
      assert.equal(text.split(' ').length, Math.max(1, p - 1));
      assert.equal(promptTokensOfText(text), Math.max(2, p), `the simulator counts ${p}`);
      assert.equal(probePrompt(p), text);
    }
    assert.ok(PROBE_WORDS.every((w) => estimateTokens(` ${w}`) === 1 && w.length <= 5));
    assert.equal(new Set(probePrompt(64).split(' ')).size, 32, 'every word, not one repeated');
  });
});

// ------------------------------------------------------------------ probeCompletion against a real server

interface Seen {
  body: Record<string, unknown>;
}

describe('probeCompletion against a local HTTP server', () => {
  let server: Server;
  let baseUrl = '';
  const seen: Seen[] = [];
  /** How the server answers the next request. */
  let answer: (body: Record<string, unknown>, res: ServerResponse) => void = () => undefined;

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
      req.on('end', () => {
        const body = JSON.parse(raw) as Record<string, unknown>;
        seen.push({ body });
        answer(body, res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  /** A vLLM that counts tokens like the simulator and serves up to `maxModelLen`. */
  const vllm =
    (maxModelLen: number, generate?: number) => (body: Record<string, unknown>, res: ServerResponse) => {
      const prompt = promptTokensOfText(String(body.prompt));
      const max = Number(body.max_tokens);
      if (prompt + max > maxModelLen) {
        json(res, 400, {
          object: 'error',
          message: contextTooLong(maxModelLen, prompt, max),
          type: 'BadRequestError',
          param: null,
          code: 400,
        });
        return;
      }
      const out = generate ?? max;
      json(res, 200, {
        id: 'cmpl-1',
        object: 'text_completion',
        model: body.model,
        choices: [
          {
            index: 0,
            text: ' the'.repeat(out),
            finish_reason: out < max ? 'stop' : 'length',
            stop_reason: null,
          },
        ],
        usage: { prompt_tokens: prompt, completion_tokens: out, total_tokens: prompt + out },
      });
    };

  test('a full answer: the sizes asked for and counted; vLLM sampling params force the whole output', async () => {
    answer = vllm(8192);
    const r = await probeCompletion({
      baseUrl,
      model: 'm',
      timeoutMs: 5000,
      promptTokens: 1024,
      outputTokens: 128,
    });
    assert.equal(r.askedPromptTokens, 1024);
    assert.equal(r.askedOutputTokens, 128);
    assert.equal(r.promptTokens, 1024);
    assert.equal(r.completionTokens, 128);
    const body = seen.at(-1)?.body;
    assert.equal(body?.max_tokens, 128);
    assert.equal(body?.min_tokens, 128);
    assert.equal(body?.ignore_eos, true);
    assert.equal(body?.model, 'm');
  });

  test('max-model-len 16: the 400 naming the context length fails the probe, saying so', async () => {
    answer = vllm(16);
    await assert.rejects(
      probeCompletion({ baseUrl, model: 'm', timeoutMs: 5000, promptTokens: 512, outputTokens: 128 }),
      (err: unknown) => {
        assert.ok(err instanceof ProbeError);
        assert.equal(err.kind, 'context');
        assert.equal(err.status, 400);
        assert.match(
          err.message,
          /^probe POST http:\/\/127\.0\.0\.1:\d+\/v1\/completions answered HTTP 400: the candidate's context \(max-model-len 16\) is too short for a 512-token prompt and 128 tokens out, a request of the service's own size: This model's maximum context length is 16 tokens\. However, you requested 640 tokens/,
        );
        return true;
      },
    );
  });

  test('the old one-token ping would have passed the same server (the broken behaviour)', async () => {
    answer = vllm(16);
    const r = await probeCompletion({
      baseUrl,
      model: 'm',
      timeoutMs: 5000,
      promptTokens: 2,
      outputTokens: 1,
    });
    assert.equal(r.completionTokens, 1);
  });

  test('newer vLLM wordings of the refusal are read too', () => {
    assert.equal(
      refusedContextLength(
        "'max_tokens' or 'max_completion_tokens' is too large: 128. This model's maximum context length is 16 tokens and your request has 512 input tokens (128 > 16 - 512).",
      ),
      16,
    );
    assert.equal(
      refusedContextLength(
        "This model's maximum context length is 4096 tokens. However, your request has 5000 input tokens. Please reduce the length of the input messages.",
      ),
      4096,
    );
    assert.equal(
      refusedContextLength('The decoder prompt (length 700) is longer than the maximum model length of 512.'),
      512,
    );
    assert.equal(refusedContextLength('The model `x` does not exist.'), null);
  });

  test('an error body of the newer shape ({"error": {...}}) is quoted', async () => {
    answer = (_b, res) =>
      json(res, 400, {
        error: {
          message:
            "This model's maximum context length is 256 tokens. However, your request has 511 input tokens.",
          type: 'BadRequestError',
          code: 400,
        },
      });
    await assert.rejects(
      probeCompletion({ baseUrl, model: 'm', timeoutMs: 5000, promptTokens: 512, outputTokens: 16 }),
      (err: unknown) =>
        err instanceof ProbeError && err.kind === 'context' && /max-model-len 256/.test(err.message),
    );
  });

  test('fewer tokens than asked for (EOS honoured despite ignore_eos): the probe fails', async () => {
    answer = vllm(8192, 7);
    await assert.rejects(
      probeCompletion({ baseUrl, model: 'm', timeoutMs: 5000, promptTokens: 64, outputTokens: 32 }),
      (err: unknown) => {
        assert.ok(err instanceof ProbeError);
        assert.equal(err.kind, 'short');
        assert.match(
          err.message,
          /answered 200 with 7 of the 32 tokens asked for \(a 64-token prompt and 32 tokens out, finish_reason "stop"\)/,
        );
        return true;
      },
    );
  });

  test("planProbe reads /metrics and /v1/models from the live service; the file's max-model-len wins", async () => {
    const metricsServer = createServer((req, res) => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(METRICS);
      } else if (req.url === '/v1/models')
        json(res, 200, { object: 'list', data: [{ id: 'm', max_model_len: 1000 }] });
      else json(res, 404, {});
    });
    await new Promise<void>((r) => metricsServer.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}`;
    try {
      const fromServer = await planProbe({
        baseUrl: url,
        settings: { promptTokens: null, outputTokens: null },
        configText: 'model: m\n',
        configPath: 'c.yaml',
      });
      // /v1/models says 1000: output ≤ 500, prompt ≤ (1000 − 382) × 0.95 = 587
      assert.equal(fromServer.outputTokens, 382);
      assert.equal(fromServer.promptTokens, 587);
      const fromFile = await planProbe({
        baseUrl: url,
        settings: undefined,
        configText: 'model: m\nmax-model-len: 8192\n',
        configPath: 'c.yaml',
      });
      assert.deepEqual([fromFile.promptTokens, fromFile.outputTokens], [1428, 382]);
      const down = await planProbe({
        baseUrl: 'http://127.0.0.1:9',
        settings: undefined,
        configText: 'model: m\n',
        configPath: 'c.yaml',
        timeoutMs: 500,
      });
      assert.deepEqual([down.promptTokens, down.outputTokens], [512, 128]);
      assert.match(down.source, /^default prompt: no \/metrics from the service \(/);
    } finally {
      await new Promise<void>((r) => metricsServer.close(() => r()));
    }
  });
});
