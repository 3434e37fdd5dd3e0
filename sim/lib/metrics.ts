// GET /metrics as vLLM's Prometheus exporter (prometheus_client text format) prints it, with vLLM's own
// metric names and the model_name / engine labels.
import { pyFloat } from './format.js';

export interface EngineStats {
  running: number;
  waiting: number;
  /** KV cache usage, 0..1. */
  kvCacheUsage: number;
  promptTokens: number;
  generationTokens: number;
  successByReason: Record<'stop' | 'length' | 'abort', number>;
  preemptions: number;
  /** Unix seconds the counters were created (process start). */
  createdAt: number;
  /** vllm:request_prompt_tokens: prompt tokens of each finished request. */
  requestPromptTokens?: TokenHistogram;
  /** vllm:request_generation_tokens: generated tokens of each finished request. */
  requestGenerationTokens?: TokenHistogram;
}

/** A Prometheus histogram of token counts, one observation per finished request. */
export interface TokenHistogram {
  /** Upper bounds, ascending (vLLM: build_1_2_5_buckets(max_model_len)); +Inf is implied. */
  bounds: number[];
  /** Observations per bucket (not cumulative): bounds.length + 1 entries, the last for +Inf. */
  counts: number[];
  sum: number;
}

/**
 * vllm/v1/metrics/loggers.py build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, … up to `max` (the buckets of
 * vllm:request_prompt_tokens and vllm:request_generation_tokens, with max = max_model_len).
 */
export function build125Buckets(max: number): number[] {
  const out: number[] = [];
  for (let scale = 1; ; scale *= 10) {
    for (const m of [1, 2, 5]) {
      if (m * scale > max) return out;
      out.push(m * scale);
    }
  }
}

export function tokenHistogram(maxModelLen: number): TokenHistogram {
  const bounds = build125Buckets(maxModelLen);
  return { bounds, counts: new Array<number>(bounds.length + 1).fill(0), sum: 0 };
}

/** Record one request's token count (Prometheus' `le`: the first bound ≥ the value). */
export function observe(h: TokenHistogram, value: number): void {
  let i = h.bounds.findIndex((b) => value <= b);
  if (i < 0) i = h.bounds.length;
  h.counts[i] = (h.counts[i] ?? 0) + 1;
  h.sum += value;
}

export interface CacheConfigInfo {
  blockSize: number;
  cacheDtype: string;
  gpuMemoryUtilization: number;
  numGpuBlocks: number;
}

/** prometheus_client's floatToGoString: Go-style exponents for large values. */
export function goFloat(d: number): string {
  if (d === Infinity) return '+Inf';
  if (d === -Infinity) return '-Inf';
  if (Number.isNaN(d)) return 'NaN';
  const s = pyFloat(d);
  const dot = s.indexOf('.');
  if (d > 0 && dot > 6) {
    const mantissa = `${s[0]}.${s.slice(1, dot)}${s.slice(dot + 1)}`.replace(/[0.]+$/, '');
    return `${mantissa}e+0${dot - 1}`;
  }
  return s;
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labels = (l: Record<string, string>) =>
  `{${Object.entries(l)
    .map(([k, v]) => `${k}="${esc(v)}"`)
    .join(',')}}`;

export function renderMetrics(modelName: string, s: EngineStats, cache: CacheConfigInfo | null): string {
  const base = { engine: '0', model_name: modelName };
  const out: string[] = [];
  const gauge = (name: string, help: string, value: number, extra: Record<string, string> = {}) => {
    out.push(
      `# HELP ${name} ${help}`,
      `# TYPE ${name} gauge`,
      `${name}${labels({ ...base, ...extra })} ${goFloat(value)}`,
    );
  };
  const counter = (name: string, help: string, values: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name}_total ${help}`, `# TYPE ${name}_total counter`);
    for (const [extra, v] of values) {
      out.push(`${name}_total${labels({ ...base, ...extra })} ${goFloat(v)}`);
      out.push(`${name}_created${labels({ ...base, ...extra })} ${goFloat(s.createdAt)}`);
    }
  };

  if (cache) {
    out.push(
      '# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig',
      '# TYPE vllm:cache_config_info gauge',
      `vllm:cache_config_info${labels({
        block_size: String(cache.blockSize),
        cache_dtype: cache.cacheDtype,
        enable_prefix_caching: 'True',
        engine: '0',
        gpu_memory_utilization: pyFloat(cache.gpuMemoryUtilization),
        num_cpu_blocks: 'None',
        num_gpu_blocks: String(cache.numGpuBlocks),
        prefix_caching_hash_algo: 'builtin',
        swap_space: '4',
      })} 1.0`,
    );
  }
  gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', s.running);
  gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', s.waiting);
  gauge(
    'vllm:gpu_cache_usage_perc',
    'GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.',
    s.kvCacheUsage,
  );
  gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', s.kvCacheUsage);
  counter('vllm:num_preemptions', 'Cumulative number of preemption from the engine.', [[{}, s.preemptions]]);
  counter('vllm:prompt_tokens', 'Number of prefill tokens processed.', [[{}, s.promptTokens]]);
  counter('vllm:generation_tokens', 'Number of generation tokens processed.', [[{}, s.generationTokens]]);
  // prometheus_client's histogram: buckets (labels sorted, `le` as a float), _count, _sum, then _created as
  // a gauge of its own.
  const histogram = (name: string, help: string, h: TokenHistogram | undefined) => {
    if (!h) return;
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    let cumulative = 0;
    [...h.bounds, Infinity].forEach((bound, i) => {
      cumulative += h.counts[i] ?? 0;
      out.push(
        `${name}_bucket${labels({ engine: '0', le: goFloat(bound), model_name: modelName })} ${goFloat(cumulative)}`,
      );
    });
    out.push(
      `${name}_count${labels(base)} ${goFloat(cumulative)}`,
      `${name}_sum${labels(base)} ${goFloat(h.sum)}`,
    );
    out.push(
      `# HELP ${name}_created ${help}`,
      `# TYPE ${name}_created gauge`,
      `${name}_created${labels(base)} ${goFloat(s.createdAt)}`,
    );
  };
  histogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', s.requestPromptTokens);
  histogram(
    'vllm:request_generation_tokens',
    'Number of generation tokens processed.',
    s.requestGenerationTokens,
  );
  counter(
    'vllm:request_success',
    'Count of successfully processed requests.',
    (['stop', 'length', 'abort'] as const).map((r) => [{ finished_reason: r }, s.successByReason[r]]),
  );
  return out.join('\n') + '\n';
}
