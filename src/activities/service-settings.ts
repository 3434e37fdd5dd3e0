// Settings of the service this host's worker manages (the vLLM server the canary restarts), from the
// environment. A bad value stops the process with one line naming the variable, the value and what is
// expected, like every other KLR_* setting (src/config/settings.ts).
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { SettingsError, readSetting } from '../config/settings.js';

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
}

type Env = Record<string, string | undefined>;

const RESTART_EXAMPLE = '["systemctl","restart","vllm"]';

const argv = z.array(z.string().min(1)).min(1);

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
  const result = argv.safeParse(parsed);
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

const httpUrl = z
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
  const restartTimeoutS = readSetting(
    env,
    'KLR_SERVICE_RESTART_TIMEOUT',
    z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(1).max(3600)),
    '60',
    'whole seconds, 1 to 3600, for the restart command and for the service to be healthy again',
  );
  const baseUrl = readSetting(
    env,
    'KLR_SERVICE_URL',
    httpUrl,
    'http://127.0.0.1:8000',
    "the service's base URL, http(s)://host:port without a query, e.g. http://127.0.0.1:8000",
  );
  const logPath = optional(env, 'KLR_SERVICE_LOG');
  const model = optional(env, 'KLR_SERVICE_MODEL');
  const dataDir = optional(env, 'KLR_DATA_DIR') ?? '.data';
  const backupDir = optional(env, 'KLR_BACKUP_DIR') ?? resolve(dataDir, 'backups');
  return {
    configPath: resolve(configPath),
    restartCommand,
    restartTimeoutMs: restartTimeoutS * 1000,
    baseUrl,
    logPath: logPath === null ? null : resolve(logPath),
    model,
    backupDir: isAbsolute(backupDir) ? backupDir : resolve(backupDir),
  };
}
