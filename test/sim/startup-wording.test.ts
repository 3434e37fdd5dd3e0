// The simulated vLLM speaks the start-up wording of the release SIM_VLLM_VERSION names. For each accounting
// regime a real process is started and its log must (1) read like the real lines of that release — each
// compared with a pattern derived from a line of test/fixtures/vllm-startup-reports (`printed`), numbers
// generalised, words, units, decimals, separators and call-site format kept — and (2) parse with the
// production reader (readStartupReport) into the sim's own plan (planMemory): its version, and the KV cache
// in GiB or in tokens, whichever the release prints. Its start-up failures must be worded as that release
// worded them and detected by the observer (classifyLine); an unknown version is refused.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPredictCandidates } from '../../src/activities/predict-candidates.js';
import { readStartupReport, type StartupReport } from '../../src/domain/startup-report.js';
import { MiB, kvBytesPerToken, planMemory, type MemoryPlan } from '../../src/domain/vllm-memory-model.js';
import { classifyLine } from '../../src/observer/patterns.js';
import { kvCacheTokens } from '../../sim/lib/engine.js';
import { loadModelProfile, parseServeArgs } from '../../sim/lib/serve-config.js';
import { DEFAULT_MODEL_PROFILE } from '../../sim/lib/settings.js';
import { parseSimRelease, ReleaseError } from '../../sim/lib/sim-release.js';
import { SIM_ARGS } from '../support/programs.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test', 'fixtures', 'vllm-startup-reports');
const GPU_MB = 81559; // the simulator's default GPU
const LIMIT = { timeout: 60_000 };

const dir = mkdtempSync(join(tmpdir(), 'kloros-wording-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// ------------------------------------------------------------------ the simulator, started per release

interface Run {
  code: number | null;
  lines: string[];
  plan: MemoryPlan;
  configPath: string;
  logPath: string;
}

let configs = 0;
function writeConfig(extra: Record<string, string | number>): string {
  const path = join(dir, `vllm-${++configs}.yaml`);
  const values = {
    model: 'meta-llama/Llama-3.1-8B-Instruct',
    host: '127.0.0.1',
    port: 0,
    'max-model-len': 8192,
    ...extra,
  };
  writeFileSync(
    path,
    Object.entries(values)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n') + '\n',
  );
  return path;
}

/** Starts the simulator; once it serves (or dies) stops it and returns what it printed, in order. */
async function runSim(
  version: string,
  extra: Record<string, string | number> = {},
  env: Record<string, string> = {},
): Promise<Run> {
  const configPath = writeConfig(extra);
  const child = spawn(process.execPath, [...SIM_ARGS, '--config', configPath], {
    cwd: ROOT,
    env: {
      ...process.env,
      SIM_VLLM_VERSION: version,
      SIM_STARTUP_MS: '20',
      SIM_STATS_INTERVAL_MS: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const take = (c: Buffer) => {
    text += c.toString('utf8');
    if (text.includes('Application startup complete.')) child.kill('SIGTERM');
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  const logPath = join(dir, `vllm-${configs}.log`);
  writeFileSync(logPath, text);
  const profile = loadModelProfile(DEFAULT_MODEL_PROFILE);
  const serving = parseServeArgs(['--config', configPath], profile, GPU_MB).serving;
  return { code, lines: text.split('\n'), plan: planMemory(profile, serving, GPU_MB), configPath, logPath };
}

/** One start per release with the default config, shared by the tests that read it. */
const started = new Map<string, Promise<Run>>();
const startOnce = (version: string) => {
  let run = started.get(version);
  if (!run) started.set(version, (run = runSim(version)));
  return run;
};

// ------------------------------------------------------------------ shapes of the real lines

/** A line of a real case, by a piece of its text. */
function realLine(file: string, needle: string): string {
  const printed = (JSON.parse(readFileSync(join(FIXTURES, file), 'utf8')) as { printed: string[] }).printed;
  const line = printed.find((l) => l.includes(needle));
  if (line === undefined) throw new Error(`${file} has no line with ${JSON.stringify(needle)}`);
  return line;
}

const LEVEL_AT = /\b(?:DEBUG|INFO|WARNING|ERROR) \d\d-\d\d \d\d:\d\d:\d\d /;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const NUMBER = /(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)/;

interface ShapeOptions {
  /** A real line quoted without its header gets V0's ("INFO 11-28 03:00:01 worker.py:233] "). */
  header?: 'bare';
  /** Figures printed by format_gib (str(round(x, 2))): one or two decimals. */
  roundedGib?: boolean;
  /** The real line is cut short in the case: the simulator's may go on. */
  cut?: boolean;
}

/**
 * The pattern of a real line: from its level on (docker, Ray and process prefixes are the case's), every
 * number generalised but its decimals and thousands separators kept, every other character literal.
 */
function shapeOf(real: string, opts: ShapeOptions = {}): RegExp {
  const at = real.search(LEVEL_AT);
  const text = at >= 0 ? real.slice(at) : real;
  const parts = text.split(NUMBER);
  const body = parts
    .map((part, i) => {
      if (i % 2 === 0) return escape(part);
      const [whole = '', decimals] = part.replace(/^-/, '').split('.');
      const int = whole.includes(',') ? String.raw`\d{1,3}(?:,\d{3})*` : String.raw`\d+`;
      const gib = opts.roundedGib && /^ ?GiB/.test(parts[i + 1] ?? '');
      const frac =
        decimals === undefined ? '' : gib ? String.raw`\.\d{1,2}` : String.raw`\.\d{${decimals.length}}`;
      return `-?${int}${frac}`;
    })
    .join('');
  const header =
    at < 0 && opts.header === 'bare' ? String.raw`[A-Z]+ \d\d-\d\d \d\d:\d\d:\d\d [\w.]+:\d+\] ` : '';
  return new RegExp(`^${header}${body}${opts.cut ? '' : '$'}`);
}

/** The simulator's line of that shape (read from its level on), or a failure naming both. */
function lineShaped(run: Run, shape: RegExp): string {
  const line = run.lines.find((l) => {
    const at = l.search(LEVEL_AT);
    return shape.test(at >= 0 ? l.slice(at) : l);
  });
  assert.ok(line !== undefined, `no line of the shape ${shape}:\n${run.lines.join('\n')}`);
  return line;
}

// ------------------------------------------------------------------ the regimes

interface Regime {
  version: string;
  /** Real lines (case file, a piece of the line, options) the simulator must print the like of. */
  shapes: [file: string, needle: string, opts?: ShapeOptions][];
  /** Lines this release did not print. */
  absent: RegExp[];
  /** The KV cache as the release reports it: in GiB (and tokens), or in tokens only. */
  kv: 'gib' | 'tokens';
}

const V0_53 = 'v0.5.3-llama-3.1-405b-fp8-8xh100-tp8.json';
const V0_5DEV = 'v0.5dev-phi-3-vision-128k-older-build.json';
const V0_64 = 'v0.6.4-llama-3.1-8b-rtx3090-29k-fail.json';
const V0_73 = 'v0.7.3dev-qwen2.5-7b-bnb4-rtx4060-8gb-fail.json';
const V1_82 = 'v0.8.2-qwen2.5-7b-rtx3090-no-cache-blocks-fail.json';
const V1_101 = 'v0.10.1-gpt-oss-120b-h100-fail.json';
const V1_102 = 'v0.10.2-qwen3-14b-single-gpu-32k.json';
const V1_141 = 'v0.14.1-gpt-oss-120b-h100-oom.json';
const V1_240 = 'v0.24.0-qwen3.6-27b-fp8-2x3090-tp2-fp8kv-262k.json';
/** V1 0.8 → 0.26 print the two lines PR #13596 introduced (0.10.2's, the same words since 0.8). */
const V1_KV_LINES: Regime['shapes'] = [
  [V1_102, 'GPU KV cache size'],
  [V1_102, 'Maximum concurrency'],
];

const REGIMES: Regime[] = [
  {
    version: '0.5.4',
    shapes: [
      [V0_53, 'Loading model weights took'],
      [V0_5DEV, '# GPU blocks'],
    ],
    absent: [/Maximum concurrency/, /Memory profiling/, /\[\w+\.py:\d+\]/],
    kv: 'tokens',
  },
  {
    version: '0.6.3.post1',
    shapes: [
      [V0_53, 'Loading model weights took'],
      [V0_5DEV, '# GPU blocks'],
      [V0_64, 'Maximum concurrency', { header: 'bare' }],
    ],
    absent: [/Memory profiling/, /\[\w+\.py:\d+\]/],
    kv: 'tokens',
  },
  {
    version: '0.6.4.post1',
    shapes: [
      [V0_64, 'Loading model weights took', { header: 'bare' }],
      [V0_64, 'Memory profiling results', { header: 'bare' }],
      [V0_64, '# GPU blocks', { header: 'bare' }],
      [V0_64, 'Maximum concurrency', { header: 'bare' }],
    ],
    absent: [/Memory profiling takes/, /\[\w+\.py:\d+\]/],
    kv: 'gib',
  },
  {
    version: '0.7.3',
    shapes: [
      [V0_73, 'Loading model weights took'],
      [V0_73, 'Memory profiling takes'],
      [V0_73, 'the current vLLM instance can use'],
      [V0_73, 'model weights take'],
      [V0_73, '# cuda blocks'],
      [V0_73, 'Maximum concurrency'],
    ],
    absent: [/Memory profiling results/, /\[\w+\.py:\d+\]/],
    kv: 'gib',
  },
  {
    version: '0.8.2',
    shapes: [[V1_82, 'Loading weights took'], [V1_82, 'Model loading took'], ...V1_KV_LINES],
    absent: [/Available KV cache memory/, /Model loading took .* GiB/, /^\(/],
    kv: 'tokens',
  },
  {
    version: '0.8.5.post1',
    // 0.10.1's wording of the weights, "GiB" since 0.8.5 (README).
    shapes: [[V1_101, 'Model loading took'], ...V1_KV_LINES],
    absent: [/Available KV cache memory/, /^\(/],
    kv: 'tokens',
  },
  {
    version: '0.10.1.1',
    shapes: [[V1_101, 'Model loading took'], [V1_101, 'Available KV cache memory'], ...V1_KV_LINES],
    absent: [/GiB memory and/],
    kv: 'gib',
  },
  {
    version: '0.14.1',
    shapes: [
      [V1_141, 'Model loading took', { roundedGib: true }],
      [V1_240, 'Available KV cache memory', { roundedGib: true }],
      [V1_240, 'GPU KV cache size'],
      [V1_240, 'Maximum concurrency'],
    ],
    absent: [/GiB and/],
    kv: 'gib',
  },
  {
    version: '0.27.1',
    // No 0.27 case yet: the README (v0.33.0 kv_cache_utils.py#L1148) says the two lines became one.
    shapes: [
      [V1_141, 'Model loading took', { roundedGib: true }],
      [V1_240, 'Available KV cache memory', { roundedGib: true }],
    ],
    absent: [/GPU KV cache size: [\d,]+ tokens$/, /\] Maximum concurrency/],
    kv: 'gib',
  },
];

/** 0.27's single line: 0.24's two, joined as the README quotes the format. */
const MERGED_KV = shapeOf(
  `${realLine(V1_240, 'GPU KV cache size')}, ${realLine(V1_240, 'Maximum concurrency').replace(/^.*?Maximum/, 'Maximum')}`,
);

const engineOf = (version: string) => parseSimRelease(version).engine;
const prefixed = (version: string) => parseSimRelease(version).minor >= 10;

describe('the start-up log follows SIM_VLLM_VERSION', () => {
  for (const regime of REGIMES) {
    test(`${regime.version}: reads like the release and parses into the plan's KV cache`, LIMIT, async () => {
      const run = await startOnce(regime.version);
      assert.equal(run.code, 0, run.lines.join('\n'));
      for (const [file, needle, opts] of regime.shapes) {
        const line = lineShaped(run, shapeOf(realLine(file, needle), opts));
        // The process prefix each release used: none before 0.10, "(EngineCore_0 pid=N)" on engine lines from it.
        if (prefixed(regime.version)) assert.match(line, /^\(EngineCore_0 pid=\d+\) /);
        else assert.match(line, /^[A-Z]+ \d\d-\d\d /);
      }
      if (regime.version === '0.27.1') lineShaped(run, MERGED_KV);
      for (const re of regime.absent) {
        const found = run.lines.find((l) => re.test(l));
        assert.equal(found, undefined, `${regime.version} did not print ${re}`);
      }

      const report: StartupReport = readStartupReport(run.lines);
      assert.equal(report.version, regime.version);
      const tokens = kvCacheTokens(run.plan);
      assert.ok(tokens > 0);
      assert.equal(report.kvTokens, tokens, 'KV cache tokens (V0: blocks × 16)');
      if (regime.kv === 'gib') {
        assert.ok(report.kvCacheGiB !== undefined, 'the KV cache in GiB');
        assert.ok(
          Math.abs(report.kvCacheGiB - run.plan.kvCacheMb / 1024) <= 0.005 + 1e-9,
          `${report.kvCacheGiB} GiB vs the plan's ${run.plan.kvCacheMb / 1024}`,
        );
      } else {
        assert.equal(report.kvCacheGiB, undefined, `${regime.version} printed no KV cache in GiB`);
      }
      assert.ok(Math.abs((report.weightsGiB ?? NaN) - run.plan.weightsMb / 1024) <= 0.005 + 1e-9);
      assert.equal(report.maxConcurrency?.tokensPerRequest ?? 8192, 8192);
      // The banner names the engine; readStartupReport knows "an LLM engine" and "a V1 LLM engine", not 0.7.1's "a V0 LLM engine".
      if (engineOf(regime.version) === 'v1') assert.equal(report.engine, 'v1');
      else if (parseSimRelease(regime.version).minor < 7) assert.equal(report.engine, 'v0');
    });
  }
});

// ------------------------------------------------------------------ start-up failures

/** The observer's reading of the simulator's lines: the memory families it detected. */
const detected = (run: Run) =>
  new Set(run.lines.map((l) => classifyLine(l)).flatMap((c) => (c?.type === 'memory' ? [c.family] : [])));

describe("start-up failures in the release's words, detected by the observer", () => {
  test(
    'V0 0.6.4.post1 on a shared GPU: the others are charged, no cache blocks (the 0.6.4.post1 case)',
    LIMIT,
    async () => {
      const run = await runSim('0.6.4.post1', {}, { SIM_GPU_OTHER_USED_MB: '56000' });
      assert.equal(run.code, 1);
      const line = lineShaped(
        run,
        shapeOf(
          realLine('v0.6.4.post1-qwen2.5-0.5b-no-cache-blocks-fail.json', 'ValueError: No available memory'),
        ),
      );
      assert.match(line, /^ERROR \d\d-\d\d [\d:]+ engine\.py:\d+\] ValueError: /);
      const blocks = lineShaped(run, shapeOf(realLine(V0_64, '# GPU blocks'), { header: 'bare' }));
      assert.match(blocks, /\] # GPU blocks: 0, /);
      assert.ok(
        run.lines.includes(
          'RuntimeError: Engine process failed to start. See stack trace for the root cause.',
        ),
      );
      assert.ok(!run.lines.some((l) => /Free memory on device|EngineCore/.test(l)), 'no V1 wording');
      assert.deepEqual([...detected(run)], ['no_cache_blocks']);
      assert.equal(readStartupReport(run.lines).error, 'no_cache_blocks');
    },
  );

  test(
    'V0 0.7.3: max_model_len above the blocks; on a shared GPU the cache allocation OOMs',
    LIMIT,
    async () => {
      const long = await runSim('0.7.3', { 'gpu-memory-utilization': 0.3, 'max-model-len': 131072 });
      assert.equal(long.code, 1);
      const line = lineShaped(long, shapeOf(realLine(V0_64, "The model's max seq len"), { header: 'bare' }));
      const tokens = kvCacheTokens(long.plan);
      assert.ok(line.includes(`stored in KV cache (${tokens})`), line);
      assert.deepEqual([...detected(long)], ['kv_cache_too_small']);
      assert.deepEqual(
        { error: readStartupReport(long.lines).error, kvTokens: readStartupReport(long.lines).kvTokens },
        { error: 'kv_cache_too_small', kvTokens: tokens },
      );

      const shared = await runSim('0.7.3', {}, { SIM_GPU_OTHER_USED_MB: '10000' });
      assert.equal(shared.code, 1);
      assert.ok(
        shared.lines.some((l) => /\] # cuda blocks: [1-9]\d*, # CPU blocks/.test(l)),
        'sized as if the GPU were free',
      );
      assert.ok(
        shared.lines.some((l) =>
          l.startsWith('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate'),
        ),
      );
      assert.ok(!shared.lines.some((l) => /Free memory on device/.test(l)), 'V0 has no start-up check');
      assert.deepEqual([...detected(shared)], ['torch_oom']);
    },
  );

  test(
    'V1 0.8.2: no estimate in the message yet; 0.27.1: "model\'s", the CPU-backend remark and the docs link',
    LIMIT,
    async () => {
      const tooLong = { 'gpu-memory-utilization': 0.3, 'max-model-len': 131072 };
      const [old, newest] = await Promise.all([runSim('0.8.2', tooLong), runSim('0.27.1', tooLong)]);
      for (const run of [old, newest]) {
        assert.equal(run.code, 1);
        assert.deepEqual([...detected(run)], ['kv_cache_too_small']);
        const report = readStartupReport(run.lines);
        assert.equal(report.error, 'kv_cache_too_small');
        assert.ok(Math.abs((report.kvCacheGiB ?? NaN) - run.plan.kvCacheMb / 1024) <= 0.005 + 1e-9);
      }
      const oldLine = old.lines.find((l) => l.startsWith('ValueError: To serve'));
      assert.match(
        oldLine ?? '',
        /^ValueError: To serve at least one request with the models's max seq len \(131072\), \(16\.00 GiB KV cache is needed, which is larger than the available KV cache memory \(\d+\.\d\d GiB\)\. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine\.$/,
      );
      const newestLine = lineShaped(
        newest,
        shapeOf(realLine('v0.2x-qwen3.8-27b-rtx3090-65k-fail.json', 'ValueError: To serve'), {
          roundedGib: true,
          cut: true,
        }),
      );
      assert.ok(
        newestLine.endsWith(
          'See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.',
        ),
      );
    },
  );
});

// ------------------------------------------------------------------ versions

describe('SIM_VLLM_VERSION', () => {
  test('a release as vLLM prints it; anything else is refused with what is expected', () => {
    assert.deepEqual(parseSimRelease('0.6.3.post1'), {
      version: '0.6.3.post1',
      minor: 6,
      patch: 3,
      engine: 'v0',
    });
    assert.deepEqual(parseSimRelease('0.10.1.1'), { version: '0.10.1.1', minor: 10, patch: 1, engine: 'v1' });
    assert.equal(parseSimRelease('0.11.1rc6.dev35+g29de3cdee').engine, 'v1');
    assert.equal(parseSimRelease('0.7.3.dev233+gad5a35c2').engine, 'v0');
    for (const bad of ['', 'latest', 'v0.10.1', '0.10', '1.0.0', '0.4.3', '0.34.0', '0.10.1 ']) {
      assert.throws(() => parseSimRelease(bad), ReleaseError, JSON.stringify(bad));
    }
  });

  test(
    'the simulator refuses an unknown version at start, naming it and what is expected',
    LIMIT,
    async () => {
      for (const bad of ['latest', '0.4.3']) {
        const run = await runSim(bad);
        assert.equal(run.code, 2);
        const message = run.lines.find((l) => l.startsWith('vllm-sim: '));
        assert.match(
          message ?? '',
          new RegExp(
            `^vllm-sim: SIM_VLLM_VERSION="${escape(bad)}" is not valid: .*0\\.6\\.3\\.post1.*0\\.10\\.1\\.1`,
          ),
        );
        assert.ok(!run.lines.some((l) => l.includes('vLLM API server version')), 'nothing started');
      }
    },
  );
});

// ------------------------------------------------------------------ calibration from the simulator's log

describe("the predictor calibrates to the simulator's start-up report", () => {
  for (const version of ['0.6.3.post1', '0.10.1.1']) {
    test(`${version}: measuredKvMb is the sim's KV cache`, LIMIT, async () => {
      const run = await startOnce(version);
      const report = readStartupReport(run.lines);
      const profile = loadModelProfile(DEFAULT_MODEL_PROFILE);
      const serving = parseServeArgs(['--config', run.configPath], profile, GPU_MB).serving;
      // As printed: GiB (two decimals), or tokens (whole blocks) × bytes per token.
      const printedMb =
        report.kvCacheGiB !== undefined
          ? report.kvCacheGiB * 1024
          : ((report.kvTokens ?? NaN) * kvBytesPerToken(profile, serving)) / MiB;
      const predict = createPredictCandidates({
        configPath: run.configPath,
        modelProfilePath: DEFAULT_MODEL_PROFILE,
        logPath: run.logPath,
        restartEstimateMs: () => 1000,
      });
      const r = await predict({
        host: 'h',
        kind: 'vllm_oom',
        vram: null,
        symptom: { family: 'torch_oom', allocMb: 4096, totalMb: GPU_MB, freeMb: 2000 },
      });
      assert.ok(r.calibration, r.basis);
      assert.equal(r.calibration.vllmVersion, version);
      assert.equal(r.calibration.measuredKvMb, Math.round(printedMb));
      assert.ok(
        Math.abs((r.calibration.measuredKvMb ?? NaN) - run.plan.kvCacheMb) <= 6,
        `${r.calibration.measuredKvMb} MiB measured vs the plan's ${run.plan.kvCacheMb}`,
      );
    });
  }
});
