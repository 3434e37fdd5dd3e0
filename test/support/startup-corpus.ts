// The memory model against vLLM's own figures: every real start-up report of
// test/fixtures/vllm-startup-reports (what vLLM printed, with the model's config.json figures, the GPU and
// the arguments) is planned with the release's accounting and with the conservative plan, and compared
// with what vLLM printed: the KV cache in GiB and in tokens, and the verdict (starts / does not). Used by
// `npm run bench -- prediction` (bench/prediction.ts) and its test (test/unit/prediction-corpus.test.ts).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  kvFitsMaxModelLen,
  planMemory,
  type MemoryPlan,
  type ModelProfile,
  type ServingConfig,
} from '../../src/domain/vllm-memory-model.js';
import {
  type VllmRelease,
  batchDefaultsFor,
  parseVllmRelease,
  releaseRules,
} from '../../src/domain/vllm-release.js';
import { profileFromHfConfig } from '../../src/service/model-profile.js';

export const CORPUS_DIR = fileURLToPath(new URL('../fixtures/vllm-startup-reports/', import.meta.url));

interface CaseFile {
  vllmVersion: string | null;
  engine: 'v0' | 'v1';
  model: { name: string; config: Record<string, unknown>; kind: string };
  gpu: { name: string | null; totalGiB: number | null; count: number };
  args: Record<string, unknown>;
  figures: Record<string, unknown> & { fits: boolean; error: string | null };
}

/** Which cases the goal (median ≤ 5 %, worst ≤ 15 %, no wrong verdict) is about. */
export type CaseClass = 'text decoder' | 'moe' | 'multimodal' | 'other attention';

export interface CaseResult {
  file: string;
  release: string | null;
  cls: CaseClass;
  /** Why the KV cache could not be compared (an input the report does not give), or null. */
  skipped: string | null;
  printedKvGiB: number | null;
  printedKvTokens: number | null;
  /** The release's plan and the conservative plan. */
  predicted: { kvGiB: number; kvTokens: number; fits: boolean } | null;
  conservative: { kvGiB: number; kvTokens: number; fits: boolean } | null;
  /** The verdict vLLM reached at KV sizing, when the report is about it (null: it failed for another reason). */
  printedFits: boolean | null;
  /** The plan says it cannot predict this model (it must be measured). */
  unpredictable: string | null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The release a case ran: as printed, else the one its file name starts with ("v0.6.5dev-…", not "v0.1x-…"). */
function releaseOf(file: string, c: CaseFile): VllmRelease | null {
  if (c.vllmVersion) return parseVllmRelease(c.vllmVersion, c.engine);
  const m = /^v(\d+\.\d+(?:\.\d+)?)(?:dev|-)/.exec(file);
  return m?.[1] ? parseVllmRelease(m[1], c.engine) : null;
}

function classOf(c: CaseFile): CaseClass {
  const cfg = c.model.config;
  // Sliding-window, hybrid (linear attention / Mamba), MLA and chunked attention: not plain attention.
  const special = ['layer_types', 'sliding_window', 'kv_lora_rank', 'attention_chunk_size'].some(
    (k) => cfg[k] !== undefined && cfg[k] !== null,
  );
  if (c.model.kind === 'vlm') return 'multimodal';
  if (special) return 'other attention';
  return c.model.kind === 'moe' ? 'moe' : 'text decoder';
}

/** Whether the report is about KV sizing: it started, or stopped at the free-memory check or the KV cache. */
function sizingVerdict(c: CaseFile): boolean | null {
  if (c.figures.fits) return true;
  const e = c.figures.error ?? '';
  const sizing =
    /No available memory for the cache blocks|larger than the maximum number of tokens|KV cache is needed|Free memory on device|KV Cache is -/i.test(
      e,
    ) || num(c.figures.estimatedMaxModelLen) !== null;
  return sizing && !/CUDA out of memory|OOM/.test(e) ? false : null;
}

function profileOf(c: CaseFile): ModelProfile | string {
  const dtype = typeof c.args.dtype === 'string' ? c.args.dtype : null;
  let p: ModelProfile;
  try {
    p = profileFromHfConfig(c.model.config, {
      file: 'config.json',
      name: c.model.name,
      checkpointBytes: 0,
      servingDtype: dtype === 'float' ? 'float32' : dtype,
    });
  } catch (e) {
    return `its config figures: ${(e as Error).message}`;
  }
  // The weights: what vLLM printed it loaded (per GPU), the checkpoint's size in production.
  const weights = num(c.figures.weightsGiB);
  if (weights === null) return 'no weights printed';
  const tp = num(c.args.tensorParallelSize) ?? 1;
  return {
    ...p,
    weightsMb: weights * 1024 * tp,
    ...(c.model.kind === 'vlm' ? { kind: 'multimodal' as const } : {}),
  };
}

function servingOf(
  c: CaseFile,
  p: ModelProfile & { maxPositionEmbeddings?: number | null },
  release: VllmRelease | null,
  totalMb: number,
): ServingConfig | string {
  const a = c.args;
  const util =
    a.gpuMemoryUtilization === null || a.gpuMemoryUtilization === undefined
      ? release
        ? releaseRules(release).defaultUtilization
        : 0.9
      : num(a.gpuMemoryUtilization);
  if (util === null) return `gpu_memory_utilization ${JSON.stringify(a.gpuMemoryUtilization)}`;
  const maxModelLen = num(a.maxModelLen) ?? p.maxPositionEmbeddings ?? null;
  if (maxModelLen === null) return 'no max_model_len';
  const chunked = typeof a.enableChunkedPrefill === 'boolean' ? a.enableChunkedPrefill : undefined;
  const d = batchDefaultsFor(release, { gpuTotalMb: totalMb, gpuName: c.gpu.name }, maxModelLen, chunked);
  const kv = typeof a.kvCacheDtype === 'string' && a.kvCacheDtype.startsWith('fp8') ? 'fp8' : 'auto';
  return {
    gpuMemoryUtilization: util,
    maxModelLen,
    maxNumBatchedTokens: num(a.maxNumBatchedTokens) ?? d.maxNumBatchedTokens,
    maxNumSeqs: num(a.maxNumSeqs) ?? d.maxNumSeqs,
    kvCacheDtype: kv,
    enforceEager: a.enforceEager === true,
    tensorParallelSize: num(a.tensorParallelSize) ?? 1,
  };
}

/** The release's start-up free-memory check, where the report gives the free memory at start. */
function passesFreeCheck(c: CaseFile, release: VllmRelease | null, plan: MemoryPlan): boolean {
  const free = num(c.figures.freeGiB) ?? num(c.figures.freeAtStartGiB);
  if (free === null || !release || !releaseRules(release).startupFreeMemoryCheck) return true;
  return free * 1024 >= plan.requestedMb;
}

function outcome(plan: MemoryPlan, serving: ServingConfig, freeOk: boolean) {
  return {
    kvGiB: plan.kvCacheMb / 1024,
    kvTokens: plan.maxKvTokens,
    fits: freeOk && kvFitsMaxModelLen(plan, serving),
  };
}

export function evaluateCase(file: string, c: CaseFile): CaseResult {
  const release = releaseOf(file, c);
  const base = {
    file,
    release: release?.version ?? null,
    cls: classOf(c),
    printedKvGiB: num(c.figures.kvCacheGiB),
    printedKvTokens: num(c.figures.kvTokens),
    printedFits: sizingVerdict(c),
    predicted: null,
    conservative: null,
    unpredictable: null,
  };
  const totalGiB = num(c.gpu.totalGiB) ?? num(c.figures.totalGiB);
  if (totalGiB === null) return { ...base, skipped: 'GPU total not printed' };
  const totalMb = totalGiB * 1024;
  const profile = profileOf(c);
  if (typeof profile === 'string') return { ...base, skipped: profile };
  const serving = servingOf(c, profile, release, totalMb);
  if (typeof serving === 'string') return { ...base, skipped: serving };
  const free = num(c.figures.freeGiB) ?? num(c.figures.freeAtStartGiB);
  // Others: what was in use at start beyond this process's CUDA context (0 when not printed).
  const othersMb = free === null ? 0 : Math.max(0, (totalGiB - free) * 1024 - 512);
  try {
    const plan = planMemory(profile, serving, totalMb, { release, othersMb });
    const conservativeServing = servingOf(c, profile, null, totalMb) as ServingConfig;
    const cons = planMemory(profile, conservativeServing, totalMb);
    return {
      ...base,
      skipped: null,
      predicted: outcome(plan, serving, passesFreeCheck(c, release, plan)),
      conservative: outcome(cons, conservativeServing, passesFreeCheck(c, null, cons)),
      unpredictable: plan.unpredictable,
    };
  } catch (e) {
    return { ...base, skipped: `the model cannot plan it: ${(e as Error).message}` };
  }
}

export function evaluateCorpus(dir = CORPUS_DIR): CaseResult[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => evaluateCase(f, JSON.parse(readFileSync(join(dir, f), 'utf8')) as CaseFile));
}

/** |predicted − printed| / |printed|, or null without both. */
export function relativeError(predicted: number | undefined, printed: number | null): number | null {
  if (predicted === undefined || printed === null || printed === 0) return null;
  return (predicted - printed) / Math.abs(printed);
}

export interface Summary {
  cases: number;
  kvCompared: number;
  medianKvGiBError: number | null;
  worstKvGiBError: number | null;
  medianKvTokensError: number | null;
  worstKvTokensError: number | null;
  verdicts: number;
  wrongVerdicts: string[];
}

const median = (xs: number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/** Errors and verdicts over `results`, for the release's plan or the conservative one. */
export function summarize(results: CaseResult[], which: 'predicted' | 'conservative'): Summary {
  const gib: number[] = [];
  const tokens: number[] = [];
  const wrong: string[] = [];
  let verdicts = 0;
  for (const r of results) {
    const p = r[which];
    if (!p || r.unpredictable) continue;
    const eg = relativeError(p.kvGiB, r.printedKvGiB);
    const et = relativeError(p.kvTokens, r.printedKvTokens);
    // A KV cache below zero (no cache blocks) has no meaningful relative error: its verdict is checked.
    if (eg !== null && (r.printedKvGiB ?? 0) > 0) gib.push(Math.abs(eg));
    if (et !== null && (r.printedKvTokens ?? 0) > 0) tokens.push(Math.abs(et));
    if (r.printedFits !== null) {
      verdicts++;
      if (p.fits !== r.printedFits) wrong.push(r.file);
    }
  }
  return {
    cases: results.length,
    kvCompared: Math.max(gib.length, tokens.length),
    medianKvGiBError: median(gib),
    worstKvGiBError: gib.length ? Math.max(...gib) : null,
    medianKvTokensError: median(tokens),
    worstKvTokensError: tokens.length ? Math.max(...tokens) : null,
    verdicts,
    wrongVerdicts: wrong,
  };
}
