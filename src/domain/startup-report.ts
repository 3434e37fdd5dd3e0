// vLLM's own account of its memory at start-up, read from its log: every start prints how much the
// weights took and what was left for the KV cache, and — depending on the release — the activation peak,
// the non-torch memory, the CUDA-graph pool, the KV cache in tokens and the concurrency it allows. These
// are measurements of the config that is running, so they are the baseline predictions start from
// (docs/prediction.md, "Calibration").
//
// The wordings are those of the released sources, V0 0.5 → V1 0.2x (test/fixtures/vllm-startup-reports
// has real examples of each, with their sources):
//   V0      "Loading model weights took 14.9888 GB" (GB meaning GiB), "# GPU blocks: 1478, # CPU blocks: 2048"
//           (later "# cuda blocks" / "# CUDA blocks"), 0.6.4 "Memory profiling results: total_gpu_memory=…GiB
//           … peak_torch_memory=…GiB … non_torch_memory=…GiB kv_cache_size=…GiB gpu_memory_utilization=0.90",
//           0.6.5+ "the current vLLM instance can use total_gpu_memory (T) x gpu_memory_utilization (U) = B" /
//           "model weights take W; non_torch_memory takes N; PyTorch activation peak memory takes A; the rest
//           of the memory reserved for KV Cache is K." (or the same as a table, one figure a line)
//   V1      "Model loading took 14.2487 GB and 2.78 seconds" (GiB from 0.8.5; "… GiB memory and …" later),
//           "Available KV cache memory: 9.61 GiB", "GPU KV cache size: 178,880 tokens", "Maximum concurrency
//           for 8,192 tokens per request: 15.07x", DEBUG "Memory profiling takes … Total non KV cache memory:
//           …; torch peak memory increase: …; non-torch forward increase memory: …; weights memory: …",
//           "Graph capturing finished in 11 secs, took 0.93 GiB", "Estimated CUDA graph memory: 0.82 GiB
//           total", "Free memory on device (F/T GiB) on startup. Desired GPU memory utilization is (U, R GiB)."
// Pure: lines in, figures out.
import { withoutEchoedInput } from './echoed-input.js';

export interface StartupReport {
  /** vLLM's version when the log names it (its banner), e.g. "0.6.3.post1". */
  version?: string;
  engine?: 'v0' | 'v1';
  /** GiB per GPU, as printed. */
  totalGiB?: number;
  utilization?: number;
  requestedGiB?: number;
  weightsGiB?: number;
  activationPeakGiB?: number;
  nonTorchGiB?: number;
  cudaGraphGiB?: number;
  cudaGraphEstimateGiB?: number;
  /** What was left for the KV cache (may be negative: no cache blocks). */
  kvCacheGiB?: number;
  kvTokens?: number;
  gpuBlocks?: number;
  /** "Maximum concurrency for L tokens per request: Cx". */
  maxConcurrency?: { tokensPerRequest: number; times: number };
  /** The start-up failure it printed, when it did not start. */
  error?: 'kv_cache_too_small' | 'no_cache_blocks' | 'startup_free_memory';
}

const NUM = String.raw`(-?\d+(?:\.\d+)?)`;
// Blanks, then the end of the line; a plain string, since a `$` before a closing backtick reads as execa's
// shell template to the security scan.
const LINE_END = '\\s*$';
const GIB = String.raw`${NUM}\s*(GiB|GB)`;
const int = (s: string | undefined) => Number((s ?? '').replaceAll(',', ''));
const num = (s: string | undefined) => Number(s);

/** A line that starts a new start-up of vLLM (its banner): what was read before belongs to another start. */
const START =
  /vLLM API server version (\S+)|Initializing a V1 LLM engine \(v([^)\s]+)\)|Initializing an LLM engine \(v([^)\s]+)\)|\bvLLM version[: ]+v?(\d[\w.+-]*)/;

type Rule = [RegExp, (m: RegExpExecArray, r: StartupReport) => void];

const RULES: Rule[] = [
  [/Loading model weights took \s*(\d+(?:\.\d+)?)\s*G/, (m, r) => (r.weightsGiB = num(m[1]))],
  [/Model loading took \s*(\d+(?:\.\d+)?)\s*Gi?B/, (m, r) => (r.weightsGiB = num(m[1]))],
  [new RegExp(String.raw`model weights take\s+${GIB}`), (m, r) => (r.weightsGiB = num(m[1]))],
  [new RegExp(String.raw`weights memory:\s*${GIB}`), (m, r) => (r.weightsGiB = num(m[1]))],
  [new RegExp(String.raw`Actual usage is ${GIB} for weight`), (m, r) => (r.weightsGiB = num(m[1]))],
  [
    new RegExp(String.raw`PyTorch activation peak memory(?: takes)?\s*${GIB}`),
    (m, r) => (r.activationPeakGiB = num(m[1])),
  ],
  [new RegExp(String.raw`available_kv_cache_memory\s+${GIB}`), (m, r) => (r.kvCacheGiB = num(m[1]))],
  [new RegExp(String.raw`torch peak memory increase:\s*${GIB}`), (m, r) => (r.activationPeakGiB = num(m[1]))],
  [new RegExp(String.raw`${GIB} for peak activation`), (m, r) => (r.activationPeakGiB = num(m[1]))],
  [new RegExp(String.raw`non_torch_memory(?: takes\s*|=|\s+)${GIB}`), (m, r) => (r.nonTorchGiB = num(m[1]))],
  [
    new RegExp(String.raw`non-torch forward increase memory:\s*${GIB}`),
    (m, r) => (r.nonTorchGiB = num(m[1])),
  ],
  [new RegExp(String.raw`${GIB} for non-torch memory`), (m, r) => (r.nonTorchGiB = num(m[1]))],
  [
    new RegExp(String.raw`total_gpu_memory \(${GIB}\) x gpu_memory_utilization \(${NUM}\) = ${GIB}`),
    (m, r) => {
      r.totalGiB = num(m[1]);
      r.utilization = num(m[3]);
      r.requestedGiB = num(m[4]);
    },
  ],
  [
    // 0.6.4: one line of name=value figures; its peak_torch_memory includes the weights.
    new RegExp(
      String.raw`total_gpu_memory=${GIB}.*?peak_torch_memory=${GIB}.*?kv_cache_size=${GIB}.*?gpu_memory_utilization=${NUM}`,
    ),
    (m, r) => {
      r.totalGiB = num(m[1]);
      r.kvCacheGiB = num(m[5]);
      r.utilization = num(m[7]);
      r.requestedGiB = r.totalGiB * r.utilization;
      if (r.weightsGiB !== undefined) r.activationPeakGiB = num(m[3]) - r.weightsGiB;
    },
  ],
  [new RegExp(String.raw`total_gpu_memory\s+${GIB}${LINE_END}`), (m, r) => (r.totalGiB = num(m[1]))],
  [new RegExp(String.raw`gpu_memory_utilization\s+${NUM}${LINE_END}`), (m, r) => (r.utilization = num(m[1]))],
  [
    new RegExp(String.raw`the current vLLM instance can use\s+${GIB}${LINE_END}`),
    (m, r) => (r.requestedGiB = num(m[1])),
  ],
  [
    new RegExp(
      String.raw`Free memory on device(?: [\w:]+)? \(${NUM}\s*/\s*${NUM} GiB\) on startup\. Desired GPU memory utilization is \(${NUM}, ${NUM} GiB\)`,
    ),
    (m, r) => {
      r.totalGiB = num(m[2]);
      r.utilization = num(m[3]);
      r.requestedGiB = num(m[4]);
    },
  ],
  [
    new RegExp(String.raw`the rest of the memory reserved for KV Cache is\s*${GIB}`),
    (m, r) => (r.kvCacheGiB = num(m[1])),
  ],
  [new RegExp(String.raw`Available KV cache memory:\s*${GIB}`), (m, r) => (r.kvCacheGiB = num(m[1]))],
  [/GPU KV cache size:\s*([\d,]+) tokens/, (m, r) => (r.kvTokens = int(m[1]))],
  [/(?:^|[\s#])(?:GPU|cuda|CUDA) blocks:\s*(\d+)/, (m, r) => (r.gpuBlocks = int(m[1]))],
  [
    /Maximum concurrency for ([\d,]+) tokens per request:\s*(\d+(?:\.\d+)?)x/,
    (m, r) => (r.maxConcurrency = { tokensPerRequest: int(m[1]), times: num(m[2]) }),
  ],
  [
    new RegExp(String.raw`Graph capturing finished in .*?took\s*${GIB}`),
    (m, r) => (r.cudaGraphGiB = num(m[1])),
  ],
  [
    new RegExp(String.raw`CUDA graph pool memory:\s*${GIB} \(actual\)`),
    (m, r) => (r.cudaGraphGiB = num(m[1])),
  ],
  [
    new RegExp(String.raw`Estimated CUDA graph memory:\s*${GIB}`),
    (m, r) => (r.cudaGraphEstimateGiB = num(m[1])),
  ],
  [
    new RegExp(String.raw`larger than the available KV cache memory \(${GIB}\)`),
    (m, r) => {
      r.kvCacheGiB = num(m[1]);
      r.error = 'kv_cache_too_small';
    },
  ],
  [
    /max seq len \(\d+\) is larger than the maximum number of tokens that can be stored in KV cache \((\d+)\)/,
    (m, r) => {
      r.kvTokens = int(m[1]);
      r.error = 'kv_cache_too_small';
    },
  ],
  [/No available memory for the cache blocks/, (_m, r) => (r.error = 'no_cache_blocks')],
  [
    new RegExp(
      String.raw`Free memory on device(?: [\w:]+)? \(${NUM}\s*/\s*${NUM} GiB\) on startup is less than desired GPU memory utilization \(${NUM}, ${NUM} GiB\)`,
    ),
    (m, r) => {
      r.totalGiB = num(m[2]);
      r.utilization = num(m[3]);
      r.requestedGiB = num(m[4]);
      r.error = 'startup_free_memory';
    },
  ],
];

/** Reads a log, line by line; `latest` is what the most recent start printed. */
export class StartupReportReader {
  private current: StartupReport = {};
  /** The most recent earlier start that printed its KV cache. */
  private measured: StartupReport | null = null;

  push(logged: string): void {
    // A prompt or output the server echoed could otherwise print any figure it likes.
    const line = withoutEchoedInput(logged);
    const start = START.exec(line);
    if (start) {
      if (hasKvFigure(this.current)) this.measured = this.current;
      const version = start[1] ?? start[2] ?? start[3] ?? start[4];
      this.current = version === undefined ? {} : { version };
      if (start[2]) this.current.engine = 'v1';
      else if (start[3]) this.current.engine = 'v0';
      return;
    }
    if (!/GB|GiB|blocks|tokens|concurrency|desired GPU memory|memory_utilization/.test(line)) return;
    if (/EngineCore|\bV1\b/.test(line)) this.current.engine ??= 'v1';
    for (const [re, apply] of RULES) {
      const m = re.exec(line);
      if (m) apply(m, this.current);
    }
  }

  /** What the latest start printed so far (empty when the log shows no start-up figures). */
  get latest(): StartupReport {
    return completed(this.current);
  }

  /**
   * The latest start that printed its KV cache: the most recent one, unless it is still starting (or
   * stopped before sizing the cache), then the one before it. Whether that start ran the config now
   * written is for the caller to check.
   */
  get latestMeasured(): StartupReport {
    return completed(!hasKvFigure(this.current) && this.measured !== null ? this.measured : this.current);
  }
}

function completed(report: StartupReport): StartupReport {
  const r = { ...report };
  // Tokens from blocks when only the block count was printed (V0: 16-token blocks).
  if (r.kvTokens === undefined && r.gpuBlocks !== undefined) r.kvTokens = r.gpuBlocks * 16;
  return r;
}

function hasKvFigure(report: StartupReport): boolean {
  return report.kvCacheGiB !== undefined || report.kvTokens !== undefined || report.gpuBlocks !== undefined;
}

/**
 * The start-up report in `lines`: the latest start's, or with `measured`, the latest start's that printed
 * its KV cache (a service restarting right now still has the figures of its previous start).
 */
export function readStartupReport(
  lines: Iterable<string>,
  which: 'latest' | 'measured' = 'latest',
): StartupReport {
  const reader = new StartupReportReader();
  for (const line of lines) reader.push(line);
  return which === 'measured' ? reader.latestMeasured : reader.latest;
}

/** Whether the report has the figures calibration needs: the weights and what was left for the KV cache. */
export function hasAccounting(report: StartupReport): boolean {
  return report.weightsGiB !== undefined && report.kvCacheGiB !== undefined;
}
