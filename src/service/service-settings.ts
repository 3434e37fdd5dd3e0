// Settings of the service this host's worker manages (the vLLM server the canary restarts), from the
// environment. A bad value stops the process with one line naming the variable, the value and what is
// expected, like every other KLR_* setting (src/config/settings.ts).
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { SettingsError, duration, readSetting } from '../config/settings.js';
import type { CandidateFloorSettings } from '../domain/candidates.js';

export interface ServiceSettings {
  /** KLR_SERVICE_CONFIG: the vLLM YAML config (`vllm serve --config FILE`), absolute. */
  configPath: string;
  /** KLR_SERVICE_RESTART_CMD: the restart command as an argument array (never a shell string). */
  restartCommand: [string, ...string[]];
  /** KLR_SERVICE_RESTART_TIMEOUT (s): longest the restart command may run, and a restore's health deadline. */
  restartTimeoutMs: number;
  /** KLR_SERVICE_URL: where the service answers (`/health`, `/v1/completions`), no trailing slash. */
  baseUrl: string;
  /** KLR_SERVICE_LOG: the service's log file, watched during the soak; null: the soak checks /health only. */
  logPath: string | null;
  /** KLR_SERVICE_MODEL: the model name the probe asks for; null: the config's served-model-name or model. */
  model: string | null;
  /** KLR_BACKUP_DIR: where the backups and the promotion record live, absolute. */
  backupDir: string;
  /**
   * KLR_CANDIDATE_MIN_*: floors no candidate lowers a knob below; null: derived from the current config
   * (src/domain/candidates.ts candidateFloors). Absent: all derived.
   */
  candidateFloors?: CandidateFloorSettings;
  /** KLR_PROBE_PROMPT_TOKENS / KLR_PROBE_OUTPUT_TOKENS; null: from the service's /metrics, else 512 / 128. */
  probe?: ProbeSizeSettings;
}

/** The canary probe's size as set by the operator; null: taken from the service's recent traffic. */
export interface ProbeSizeSettings {
  promptTokens: number | null;
  outputTokens: number | null;
}

type Env = Record<string, string | undefined>;

const RESTART_EXAMPLE = '["systemctl","restart","vllm"]';

/** A command as an argument list (never a shell string): non-empty strings, at least the program. */
export const commandArgv = z.array(z.string().min(1)).min(1);

function parseRestartCommand(raw: string | undefined): [string, ...string[]] {
  const name = 'KLR_SERVICE_RESTART_CMD';
  const value = raw?.trim() ?? '';
  if (value === '') {
    throw new SettingsError(
      name,
      raw ?? '',
      `the command that restarts the service, as a JSON array of strings, e.g. ${RESTART_EXAMPLE}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || typeof parsed === 'string') {
    // A shell string (`systemctl restart vllm`): never run through a shell; show the array form.
    const words = (typeof parsed === 'string' ? parsed : value).split(/\s+/).filter(Boolean);
    throw new SettingsError(
      name,
      raw ?? '',
      `a JSON array of strings (an argument list, never run through a shell), e.g. ${JSON.stringify(words)}`,
    );
  }
  const result = commandArgv.safeParse(parsed);
  if (!result.success) {
    throw new SettingsError(
      name,
      raw ?? '',
      `a non-empty JSON array of non-empty strings, e.g. ${RESTART_EXAMPLE}`,
    );
  }
  const [file, ...args] = result.data;
  return [file as string, ...args];
}

const optional = (env: Env, name: string): string | null => {
  const v = env[name]?.trim();
  return v ? v : null;
};

/** An http(s) base URL without query or fragment, its trailing slashes removed. */
export const httpUrl = z
  .string()
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.search === '' && u.hash === '';
    } catch {
      return false;
    }
  })
  .transform((s) => s.replace(/\/+$/, ''));

/** A whole number in [min, max], or null when blank. */
function optionalWhole(env: Env, name: string, min: number, max: number, expected: string): number | null {
  return readSetting(
    env,
    name,
    z.union([
      z.literal('').transform(() => null),
      z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(max)),
    ]),
    '',
    expected,
  );
}

/** KLR_CANDIDATE_MIN_*: the operator's floors (blank: derived from the current config). */
export function loadCandidateFloors(env: Env = process.env): CandidateFloorSettings {
  const derived = 'blank derives it from the current config';
  return {
    maxModelLen: optionalWhole(
      env,
      'KLR_CANDIDATE_MIN_MAX_MODEL_LEN',
      16,
      100_000_000,
      `the shortest max-model-len a candidate may propose, whole tokens ≥ 16, e.g. 4096 (${derived})`,
    ),
    maxNumSeqs: optionalWhole(
      env,
      'KLR_CANDIDATE_MIN_MAX_NUM_SEQS',
      1,
      1_000_000,
      `the fewest max-num-seqs a candidate may propose, a whole number ≥ 1, e.g. 64 (${derived})`,
    ),
    maxNumBatchedTokens: optionalWhole(
      env,
      'KLR_CANDIDATE_MIN_MAX_NUM_BATCHED_TOKENS',
      1,
      100_000_000,
      `the smallest max-num-batched-tokens a candidate may propose, whole tokens ≥ 1, e.g. 2048 (${derived})`,
    ),
    gpuMemoryUtilization: readSetting(
      env,
      'KLR_CANDIDATE_MIN_GPU_MEMORY_UTILIZATION',
      z.union([
        z.literal('').transform(() => null),
        z
          .string()
          .regex(/^(0?\.\d+|1(\.0+)?)$/)
          .transform(Number)
          .pipe(z.number().gt(0).max(1)),
      ]),
      '',
      `the lowest gpu-memory-utilization a candidate may propose, a fraction in (0, 1], e.g. 0.5 (${derived})`,
    ),
  };
}

/** KLR_PROBE_PROMPT_TOKENS / KLR_PROBE_OUTPUT_TOKENS (blank: from the service's /metrics). */
export function loadProbeSizeSettings(env: Env = process.env): ProbeSizeSettings {
  const fromTraffic = "blank takes the 90th percentile of the service's own traffic from its /metrics";
  return {
    promptTokens: optionalWhole(
      env,
      'KLR_PROBE_PROMPT_TOKENS',
      1,
      10_000_000,
      `the canary probe's prompt length, whole tokens ≥ 1, e.g. 1024 (${fromTraffic})`,
    ),
    outputTokens: optionalWhole(
      env,
      'KLR_PROBE_OUTPUT_TOKENS',
      1,
      1_000_000,
      `the tokens the canary probe asks the service to generate, a whole number ≥ 1, e.g. 128 (${fromTraffic})`,
    ),
  };
}

/**
 * The settings every service of the host shares unless its entry in a services file says otherwise: the
 * restart timeout (KLR_SERVICE_RESTART_TIMEOUT) and where backups live (KLR_BACKUP_DIR, absolute).
 */
export function loadServiceDefaults(env: Env = process.env): { restartTimeoutMs: number; backupDir: string } {
  const restartTimeoutS = readSetting(
    env,
    'KLR_SERVICE_RESTART_TIMEOUT',
    duration({ min: 1, max: 3600, bare: 's', whole: true }),
    '60',
    'a duration such as 5m or 300 (bare numbers are seconds), 1s to 1h, whole seconds, for the restart command and for the service to be healthy again',
  );
  const dataDir = optional(env, 'KLR_DATA_DIR') ?? '.data';
  const backupDir = optional(env, 'KLR_BACKUP_DIR') ?? resolve(dataDir, 'backups');
  return {
    restartTimeoutMs: restartTimeoutS * 1000,
    backupDir: isAbsolute(backupDir) ? backupDir : resolve(backupDir),
  };
}

/** Read and validate the service settings; throws {@link SettingsError} on the first bad value. */
export function loadServiceSettings(env: Env = process.env): ServiceSettings {
  const configPath = readSetting(
    env,
    'KLR_SERVICE_CONFIG',
    z.string().min(1),
    '',
    'the path of the vLLM YAML config the service runs with (vllm serve --config FILE)',
  );
  const restartCommand = parseRestartCommand(env.KLR_SERVICE_RESTART_CMD);
  const { restartTimeoutMs, backupDir } = loadServiceDefaults(env);
  const baseUrl = readSetting(
    env,
    'KLR_SERVICE_URL',
    httpUrl,
    'http://127.0.0.1:8000',
    "the service's base URL, http(s)://host:port without a query, e.g. http://127.0.0.1:8000",
  );
  const logPath = optional(env, 'KLR_SERVICE_LOG');
  const model = optional(env, 'KLR_SERVICE_MODEL');
  return {
    configPath: resolve(configPath),
    restartCommand,
    restartTimeoutMs,
    baseUrl,
    logPath: logPath === null ? null : resolve(logPath),
    model,
    backupDir,
    candidateFloors: loadCandidateFloors(env),
    probe: loadProbeSizeSettings(env),
  };
}
