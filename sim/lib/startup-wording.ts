// The start-up log and the start-up errors of the vLLM release the simulator plays (SIM_VLLM_VERSION),
// worded as that release printed them, so that the demo and the e2e tests exercise the parsing production
// uses (readStartupReport in src/domain/startup-report.ts, classifyLine in src/observer/patterns.ts).
// Pure: figures in, log records and texts out.
//
// The wordings follow the real lines in test/fixtures/vllm-startup-reports/*.json (`printed`; each file name
// starts with its release) and that README's "How each release accounts memory":
//   V0 0.5 – 0.6.3    v0.5.3-…, v0.5dev-…, v0.5.0.post1-…: "model_runner.py:692] Loading model weights took
//                     57.7520 GB", "# GPU blocks: 8825, # CPU blocks: 682"; from 0.6.3 "Maximum concurrency for
//                     29000 tokens per request: 0.82x". Call sites without brackets up to 0.7.x.
//   V0 0.6.4.x        v0.6.4-…: "Memory profiling results: total_gpu_memory=23.58GiB initial_memory_usage=…".
//   V0 0.6.5 – 0.7.x  v0.6.5-…, v0.7.1-…, v0.7.3dev-…: "Memory profiling takes 4.44 seconds" / "the current vLLM
//                     instance can use total_gpu_memory (44.42GiB) x gpu_memory_utilization (0.90) = 39.98GiB" /
//                     "model weights take 30.71GiB; non_torch_memory takes …", then "# CUDA blocks: 3947, # CPU
//                     blocks: 2048" ("# GPU" up to 0.6.x, "# CUDA" 0.7.0 – 0.7.2, "# cuda" from 0.7.3).
//   V1 0.8.0 – 0.9.0  v0.8.2-…: "[gpu_model_runner.py:1186] Model loading took 14.2487 GB and 2.777985 seconds"
//                     ("GiB" from 0.8.5), "GPU KV cache size: … tokens"; no "Available KV cache memory" yet.
//   V1 0.9.1 – 0.26   v0.10.1-…, v0.10.2-…, v0.14.1-…, v0.19.0-…, v0.24.0-…: "Available KV cache memory: 6.51
//                     GiB", "GPU KV cache size: 42,656 tokens"; "Model loading took 64.38 GiB memory and …".
//   V1 0.27 →         README only (no case yet): "GPU KV cache size: N tokens, Maximum concurrency for L tokens
//                     per request: Cx" on one line; errors say "model's" and link the docs.
// Where a wording changed between two attested releases, the boundary used is the first release attested
// with the new wording (noted at each). The call sites in the headers: startup-sites.ts.
import type { ServingConfig } from '../../src/domain/vllm-memory-model.js';
import { GiB, fixed, pyRound2, thousands } from './format.js';
import { releaseAtLeast as atLeast, type SimRelease } from './sim-release.js';
import { pyRepr } from './serve-config.js';
import { sitesOf } from './startup-sites.js';
import type { Level, Proc } from './vllm-log.js';

export interface LogRecord {
  proc: Proc;
  level: Level;
  /** The call site, "worker.py:266". */
  source: string;
  /** One logger call; each of its lines gets the header. */
  message: string;
}

/** vLLM's KV block on CUDA, tokens (V0 prints blocks, not tokens). */
const BLOCK = 16;
/** V0's default swap space, per GPU: what "# CPU blocks" counts. */
const SWAP_SPACE_BYTES = 4 * GiB;
const DOCS = ' See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.';

const gib = (mb: number) => mb / 1024;
/** vLLM's format_gib (str(round(x, 2))), which replaced "%.2f"/"%.4f" in the 2026 releases. */
const formatGib = (mb: number) => pyRound2(gib(mb));

// ------------------------------------------------------------------ the log header

/** The logger's header: "INFO 10-17 07:46:04 worker.py:232] " up to 0.7.x, "[worker.py:232]" from 0.8. */
export function logHeader(r: SimRelease, level: Level, source: string, at: string): string {
  return atLeast(r, 8) ? `${level} ${at} [${source}] ` : `${level} ${at} ${source}] `;
}

/** Whether the release prefixes each line with its process, "(APIServer pid=N) " (from 0.10). */
export function processPrefixes(r: SimRelease): boolean {
  return atLeast(r, 10);
}

const rec = (proc: Proc, source: string, message: string, level: Level = 'INFO'): LogRecord => ({
  proc,
  level,
  source,
  message,
});

// ------------------------------------------------------------------ the API server and the engine banner

/** What the start-up lines say about the server being started. */
export interface ServeView {
  model: string;
  servedName: string;
  architecture: string;
  /** "torch.bfloat16" / "torch.float32". */
  dtype: string;
  serving: ServingConfig;
  /** The settings given explicitly, in vLLM's snake_case. */
  explicit: Record<string, unknown>;
}

/** The API server's first lines: the platform (0.7 →), its version, its arguments. */
export function apiPreamble(r: SimRelease, v: ServeView): LogRecord[] {
  const s = sitesOf(r);
  const args = atLeast(r, 10)
    ? `non-default args: ${pyRepr(v.explicit)}`
    : `args: Namespace(${Object.entries({ model_tag: v.model, ...v.explicit })
        .map(([k, x]) => `${k}=${pyRepr(x)}`)
        .join(', ')})`;
  return [
    ...(atLeast(r, 7) ? [rec('none', s.platform, 'Automatically detected platform cuda.')] : []),
    rec('api', s.api, `vLLM API server version ${r.version}`),
    rec('api', s.args, args),
  ];
}

/** The resolved config (V1: V0 printed chunked prefill only when it was on). */
export function configResolved(r: SimRelease, v: ServeView): LogRecord[] {
  if (r.engine === 'v0') return [];
  const chunked = rec(
    'api',
    atLeast(r, 10) ? 'scheduler.py:222' : 'config.py:1693',
    `Chunked prefill is enabled with max_num_batched_tokens=${v.serving.maxNumBatchedTokens}.`,
  );
  if (!atLeast(r, 10)) return [chunked];
  return [
    rec('api', '__init__.py:711', `Resolved architecture: ${v.architecture}`),
    rec('api', '__init__.py:1750', `Using max model len ${v.serving.maxModelLen}`),
    chunked,
  ];
}

/** "Initializing an LLM engine (v…)" (V0 ≤ 0.7.0), "a V0 LLM engine" (V0 0.7.1 →), "a V1 LLM engine". */
export function engineBanner(r: SimRelease, v: ServeView): LogRecord[] {
  const s = sitesOf(r);
  const sv = v.serving;
  const common =
    `model='${v.model}', speculative_config=None, tokenizer='${v.model}', skip_tokenizer_init=False, ` +
    `tokenizer_mode=auto, revision=None, trust_remote_code=False, dtype=${v.dtype}, max_seq_len=${sv.maxModelLen}, ` +
    `download_dir=None, load_format=${atLeast(r, 10) ? 'auto' : 'LoadFormat.AUTO'}, tensor_parallel_size=${sv.tensorParallelSize}, ` +
    `pipeline_parallel_size=1, disable_custom_all_reduce=False, quantization=None, ` +
    `enforce_eager=${sv.enforceEager ? 'True' : 'False'}, kv_cache_dtype=${sv.kvCacheDtype}, device_config=cuda, seed=0, ` +
    `served_model_name=${v.servedName}, `;
  if (r.engine === 'v1') {
    const banner = rec(
      'engine',
      s.engine,
      `Initializing a V1 LLM engine (v${r.version}) with config: ${common}` +
        'enable_prefix_caching=True, chunked_prefill_enabled=True, use_async_output_proc=True',
    );
    if (!atLeast(r, 10)) return [banner];
    return [
      rec('engine', 'core.py:636', 'Waiting for init message from front-end.'),
      banner,
      rec(
        'engine',
        'parallel_state.py:1134',
        'rank 0 in world size 1 is assigned as DP rank 0, PP rank 0, TP rank 0, EP rank 0',
      ),
    ];
  }
  const which = atLeast(r, 7, 1) ? 'a V0 LLM engine' : 'an LLM engine';
  return [
    rec(
      'engine',
      s.engine,
      `Initializing ${which} (v${r.version}) with config: ${common}` +
        `num_scheduler_steps=1, enable_prefix_caching=False, use_async_output_proc=True, mm_processor_kwargs=None`,
    ),
  ];
}

// ------------------------------------------------------------------ loading the weights

export function loadStart(r: SimRelease, model: string): LogRecord[] {
  const s = sitesOf(r);
  const records = [rec('engine', s.loadStart, `Starting to load model ${model}...`)];
  if (atLeast(r, 10))
    records.push(rec('engine', 'gpu_model_runner.py:1985', 'Loading model from scratch...'));
  records.push(
    r.engine === 'v1'
      ? rec('engine', 'cuda.py:328', 'Using Flash Attention backend on V1 engine.')
      : rec('engine', 'selector.py:135', 'Using Flash Attention backend.'),
    rec('engine', 'weight_utils.py:296', "Using model weights format ['*.safetensors']"),
  );
  return records;
}

/**
 * The weights are in: V0 "Loading model weights took X GB" (GB meaning GiB); V1 "Model loading took X GB and
 * S seconds" (0.8.2 case), "GiB" from 0.8.5 (README), "GiB memory and" from 0.11.1 (first attested in a build
 * after 0.11.0; 0.10.2 still "GiB and"), format_gib from 0.14 (0.14.1 case: "64.38 GiB memory").
 */
export function weightsLoaded(r: SimRelease, weightsMb: number, seconds: number): LogRecord[] {
  const s = sitesOf(r);
  if (r.engine === 'v0')
    return [rec('engine', s.loaded, `Loading model weights took ${fixed(gib(weightsMb), 4)} GB`)];
  const size = atLeast(r, 14)
    ? `${formatGib(weightsMb)} GiB memory`
    : atLeast(r, 11, 1)
      ? `${fixed(gib(weightsMb), 4)} GiB memory`
      : `${fixed(gib(weightsMb), 4)} ${atLeast(r, 8, 5) ? 'GiB' : 'GB'}`;
  return [
    rec('engine', s.weightsRead, `Loading weights took ${fixed(seconds * 0.93, 2)} seconds`),
    rec('engine', s.loaded, `Model loading took ${size} and ${fixed(seconds, 6)} seconds`),
  ];
}

/** torch.compile's lines (V1). */
export function compiled(r: SimRelease, cacheHash: string, seconds: number | null): LogRecord[] {
  if (r.engine === 'v0') return [];
  if (seconds === null) {
    return [
      rec(
        'engine',
        'backends.py:548',
        `Using cache directory: /root/.cache/vllm/torch_compile_cache/${cacheHash}/rank_0_0/backbone for vLLM's torch.compile`,
      ),
    ];
  }
  return [
    rec('engine', 'backends.py:559', `Dynamo bytecode transform time: ${fixed(seconds * 0.6, 2)} s`),
    rec('engine', 'monitor.py:34', `torch.compile takes ${fixed(seconds * 0.9, 2)} s in total`),
  ];
}

// ------------------------------------------------------------------ the memory accounting

/** What the profiling measured, MiB per GPU, as the release reports it. */
export interface Accounting {
  totalMb: number;
  utilization: number;
  requestedMb: number;
  weightsMb: number;
  /** The activation peak (with whatever else the budget holds that the release has no term for). */
  activationMb: number;
  nonTorchMb: number;
  kvCacheMb: number;
  profileSeconds: number;
}

/**
 * The profiling's report, before the KV cache is sized: V0 0.6.4 "Memory profiling results: …" (one line),
 * V0 0.6.5 → "Memory profiling takes …" and two lines of figures, V1 0.9.1 → "Available KV cache memory: …"
 * ("%.2f", format_gib from 0.14). Nothing in V0 up to 0.6.3 and V1 up to 0.9.0.
 */
export function memoryProfile(r: SimRelease, a: Accounting): LogRecord[] {
  const s = sitesOf(r);
  const g = (mb: number) => `${fixed(gib(mb), 2)}GiB`;
  if (r.engine === 'v1') {
    if (!atLeast(r, 9, 1)) return [];
    const kv = atLeast(r, 14) ? formatGib(a.kvCacheMb) : fixed(gib(a.kvCacheMb), 2);
    return [rec('engine', s.available, `Available KV cache memory: ${kv} GiB`)];
  }
  if (!atLeast(r, 6, 4)) return [];
  if (!atLeast(r, 6, 5)) {
    // peak_torch_memory holds the weights; initial usage is what the loaded model holds before profiling.
    const held = a.weightsMb + a.nonTorchMb;
    return [
      rec(
        'engine',
        s.profile,
        `Memory profiling results: total_gpu_memory=${g(a.totalMb)} initial_memory_usage=${g(held)} ` +
          `peak_torch_memory=${g(a.weightsMb + a.activationMb)} memory_usage_post_profile=${g(held)} ` +
          `non_torch_memory=${g(a.nonTorchMb)} kv_cache_size=${g(a.kvCacheMb)} ` +
          `gpu_memory_utilization=${fixed(a.utilization, 2)}`,
      ),
    ];
  }
  return [
    rec(
      'engine',
      s.profile,
      [
        `Memory profiling takes ${fixed(a.profileSeconds, 2)} seconds`,
        `the current vLLM instance can use total_gpu_memory (${g(a.totalMb)}) x gpu_memory_utilization ` +
          `(${fixed(a.utilization, 2)}) = ${g(a.requestedMb)}`,
        `model weights take ${g(a.weightsMb)}; non_torch_memory takes ${g(a.nonTorchMb)}; PyTorch activation ` +
          `peak memory takes ${g(a.activationMb)}; the rest of the memory reserved for KV Cache is ${g(a.kvCacheMb)}.`,
      ].join('\n'),
    ),
  ];
}

/**
 * The KV cache the engine allocated: V0 "# GPU blocks: N, # CPU blocks: M" (+ the concurrency from 0.6.3),
 * V1 "GPU KV cache size: N tokens" and "Maximum concurrency …" (one line from 0.27).
 */
export function kvCacheSize(
  r: SimRelease,
  kvTokens: number,
  kvBytesPerToken: number,
  maxModelLen: number,
): LogRecord[] {
  const s = sitesOf(r);
  if (r.engine === 'v0') {
    const blocks = Math.floor(kvTokens / BLOCK);
    const cpuBlocks = Math.floor(SWAP_SPACE_BYTES / (BLOCK * kvBytesPerToken));
    const device = !atLeast(r, 7) ? 'GPU' : atLeast(r, 7, 3) ? 'cuda' : 'CUDA';
    const records = [rec('engine', s.blocks, `# ${device} blocks: ${blocks}, # CPU blocks: ${cpuBlocks}`)];
    if (atLeast(r, 6, 3)) {
      records.push(
        rec(
          'engine',
          s.concurrency,
          `Maximum concurrency for ${maxModelLen} tokens per request: ${fixed((blocks * BLOCK) / maxModelLen, 2)}x`,
        ),
      );
    }
    return records;
  }
  const size = `GPU KV cache size: ${thousands(kvTokens)} tokens`;
  const concurrency = `Maximum concurrency for ${thousands(maxModelLen)} tokens per request: ${fixed(kvTokens / maxModelLen, 2)}x`;
  if (atLeast(r, 27)) return [rec('engine', s.kvSize, `${size}, ${concurrency}`)];
  return [rec('engine', s.kvSize, size), rec('engine', s.kvConcurrency, concurrency)];
}

/** CUDA graphs captured: "…in N secs." up to V0 0.6.3, "…, took X GiB" from 0.6.4; a progress bar from 0.10. */
export function graphsCaptured(
  r: SimRelease,
  seconds: number,
  graphMb: number,
): { bar: string | null; records: LogRecord[] } {
  const secs = Math.max(1, Math.round(seconds));
  const took = atLeast(r, 6, 4) ? `, took ${fixed(gib(graphMb), 2)} GiB` : '.';
  return {
    bar: atLeast(r, 10)
      ? `Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|██████████| 67/67 [00:0${Math.min(9, secs)}<00:00, 33.44it/s]`
      : null,
    records: [rec('engine', sitesOf(r).graphs, `Graph capturing finished in ${secs} secs${took}`)],
  };
}

/** Eager mode (V1 says so from 0.10; V0 just captures nothing). */
export function graphsDisabled(r: SimRelease): LogRecord[] {
  return atLeast(r, 10) ? [rec('engine', '__init__.py:3575', 'Cudagraph is disabled under eager mode')] : [];
}

/** The engine is up. */
export function engineReady(r: SimRelease, seconds: number, kvTokens: number): LogRecord[] {
  const records = [
    rec(
      'engine',
      sitesOf(r).init,
      `init engine (profile, create kv cache, warmup model) took ${fixed(seconds, 2)} seconds`,
    ),
  ];
  if (atLeast(r, 10)) {
    records.push(
      rec(
        'api',
        'loggers.py:142',
        `Engine 000: vllm cache_config_info with initialization after num_gpu_blocks is: ${kvTokens / BLOCK}`,
      ),
      rec('api', 'api_server.py:1611', "Supported_tasks: ['generate']"),
    );
  }
  return records;
}

// ------------------------------------------------------------------ the start-up errors

/** Nothing left for the KV cache; the docs link from 0.15 (2026 logs; first case 0.15.2rc1). */
export function noCacheBlocks(r: SimRelease): string {
  return (
    'No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.' +
    (atLeast(r, 15) ? DOCS : '')
  );
}

/** V0 (worker.raise_if_cache_size_invalid): one max-length sequence does not fit in the blocks. */
export function maxSeqLenAboveKvTokens(maxModelLen: number, kvTokens: number): string {
  return (
    `The model's max seq len (${maxModelLen}) is larger than the maximum number of tokens that can be stored in ` +
    `KV cache (${kvTokens}). Try increasing \`gpu_memory_utilization\` or decreasing \`max_model_len\` when ` +
    'initializing the engine.'
  );
}

/**
 * V1 (check_enough_kv_cache_memory): one max-length request needs more than the KV cache. No estimate up to
 * 0.8.x (README: it prints from 0.9); format_gib figures and the docs link from 0.15 (0.15.2rc1 case:
 * "(24.0 GiB"); "model's", the CPU-backend remark and kv_cache_planning.py from 0.27 (README, 2026 case).
 */
export function requestAboveKvCache(
  r: SimRelease,
  maxModelLen: number,
  neededBytes: number,
  availableBytes: number,
  estimatedMaxModelLen: number,
): string {
  const figure = (bytes: number) => (atLeast(r, 15) ? pyRound2(bytes / GiB) : fixed(bytes / GiB, 2));
  const estimate = !atLeast(r, 9)
    ? null
    : estimatedMaxModelLen > 0
      ? `Based on the available memory, the estimated maximum model length is ${estimatedMaxModelLen}.`
      : '';
  const newest = atLeast(r, 27);
  return (
    `To serve at least one request with the ${newest ? "model's" : "models's"} max seq len (${maxModelLen}), ` +
    `(${figure(neededBytes)} GiB KV cache is needed, which is larger than the available KV cache memory ` +
    `(${figure(availableBytes)} GiB). ${estimate === null ? '' : `${estimate} `}` +
    `Try increasing \`gpu_memory_utilization\`${newest ? ' (which also controls CPU memory on the CPU backend)' : ''} ` +
    'or decreasing `max_model_len` when initializing the engine.' +
    (atLeast(r, 15) ? DOCS : '')
  );
}

/** PyTorch's OOM class as the release's torch prints it: torch.OutOfMemoryError from torch 2.5 (vLLM 0.6.4). */
export function torchOomException(r: SimRelease): string {
  return atLeast(r, 6, 4) ? 'torch.OutOfMemoryError' : 'torch.cuda.OutOfMemoryError';
}

/** The API server's last word when V0's engine process died at start-up (MQLLMEngine, 0.6 →). */
export const V0_ENGINE_FAILED = 'Engine process failed to start. See stack trace for the root cause.';
