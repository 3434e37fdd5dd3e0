// The first ServiceAdapter: vLLM started with `vllm serve --config FILE`, a YAML config the canary edits in
// place, a restart command of the operator's (systemctl, docker restart, a script), /health and
// /v1/completions on its URL, and its log file. Every file step is keyed by the lease (config-file.ts).
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { VramSnapshot } from '../domain/vram-snapshot.js';
import type { ServiceSettings } from './service-settings.js';
import {
  ConfigFileError,
  atomicWriteFile,
  backupConfig,
  backupPathFor,
  readIfExists,
  readLeaseRecord,
  recordPromotion,
  restoreBackup,
  rollbackToPrevious,
  writeLeaseRecord,
} from './config-file.js';
import {
  HealthTimeoutError,
  abortReason,
  checkHealth,
  firstServedModel,
  probeCompletion,
  sleep,
  waitHealthy,
} from './health.js';
import { LogWatcher } from './log-watch.js';
import { planProbe } from './probe-size.js';
import { runRestartCommand } from './restart-command.js';
import type { HealthOutcome, LogMark, ServiceAdapter } from './service-adapter.js';
import { readServiceStartupReport, startMeasurement } from './startup-log.js';
import { applyChanges } from './vllm-config.js';

export interface VllmServiceOptions {
  /** GPU memory as the GPUs report it (nvidia-smi). */
  measureVram: () => Promise<VramSnapshot>;
  /** Longest the probe may take, ms (default: 30 s, more for a long output: ~50 ms a token when cold). */
  probeTimeoutMs?: number;
}

export function vllmService(settings: ServiceSettings, options: VllmServiceOptions): ServiceAdapter {
  const { configPath, backupDir, baseUrl, logPath } = settings;
  const logCause = async (mark: LogMark): Promise<string | null> => {
    if (logPath === null || mark === null) return null;
    try {
      return await LogWatcher.at(logPath, mark).poll(true);
    } catch {
      return null;
    }
  };
  return {
    baseUrl,
    configPath,
    restartTimeoutMs: settings.restartTimeoutMs,

    async readConfig() {
      try {
        return await readFile(configPath);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new ConfigFileError(
          `vLLM config ${configPath} ${code === 'ENOENT' ? 'does not exist' : `cannot be read: ${(err as Error).message}`} (KLR_SERVICE_CONFIG)`,
          configPath,
          code ?? null,
        );
      }
    },
    readConfigIfAny: () => readIfExists(configPath),
    withChanges: (configText, candidate) => applyChanges(configText, candidate.changes, configPath),
    backup: (leaseId) => backupConfig(configPath, backupDir, leaseId),
    readBackup: (leaseId) => readIfExists(backupPathFor(configPath, backupDir, leaseId)),
    writeConfig: (text) => atomicWriteFile(configPath, text),
    restoreBackup: (leaseId) => restoreBackup(backupPathFor(configPath, backupDir, leaseId), configPath),
    promote: (leaseId) => recordPromotion(configPath, backupDir, leaseId),
    rollbackToPrevious: () => rollbackToPrevious(configPath, backupDir),
    readLeaseRecord: (leaseId) => readLeaseRecord(configPath, backupDir, leaseId),
    writeLeaseRecord: (record) => writeLeaseRecord(configPath, backupDir, record),

    async restart(signal) {
      const startMark = logPath !== null ? await LogWatcher.sizeOf(logPath) : null;
      const { ms } = await runRestartCommand(settings.restartCommand, settings.restartTimeoutMs, signal);
      // Failures count from here: a crash-looping service can still print its last OOM while the restart
      // command stops it, and that failure is the old config's. The new start's banner, though, can come
      // before the command returns (a quick start; a command that waits for the service), so its report
      // is read from before the command (startMark), the latest start there.
      return {
        commandMs: ms,
        logMark: logPath !== null ? await LogWatcher.sizeOf(logPath) : null,
        startMark,
      };
    },
    waitHealthy: (opts) => waitHealthyWatchingLog({ ...opts, baseUrl, logPath, logCause }),
    checkHealth: (timeoutMs, signal) => checkHealth(baseUrl, timeoutMs, signal),
    planProbe: (configText, signal) =>
      planProbe({
        baseUrl,
        apiKey: servedIdentity(configText).apiKey,
        settings: settings.probe,
        configText,
        configPath,
        signal,
      }),
    async probe(configText, size, signal) {
      const timeoutMs = options.probeTimeoutMs ?? 30_000;
      const identity = servedIdentity(configText);
      const model =
        settings.model ?? identity.model ?? (await firstServedModel(baseUrl, timeoutMs, signal)) ?? 'default';
      return probeCompletion({
        baseUrl,
        model,
        timeoutMs: options.probeTimeoutMs ?? Math.max(timeoutMs, 10_000 + 50 * size.outputTokens),
        apiKey: identity.apiKey,
        signal,
        promptTokens: size.promptTokens,
        outputTokens: size.outputTokens,
      });
    },
    measureVram: options.measureVram,
    async startupMeasurement(startMark, candidate) {
      if (logPath === null || startMark === null) return null;
      return startMeasurement(await readServiceStartupReport(logPath, startMark), candidate);
    },
    followLog: (mark) => (logPath !== null ? LogWatcher.at(logPath, mark ?? 0) : null),
    logCause,
  };
}

/**
 * Wait for `/health` while reading the service's log from `logMark`: a GPU memory failure in the log (the
 * engine died at start-up) ends the wait at once instead of at the deadline. Cancellation rejects.
 */
async function waitHealthyWatchingLog(opts: {
  baseUrl: string;
  deadlineMs: number;
  signal: AbortSignal;
  logPath: string | null;
  logMark: LogMark;
  logCause: (mark: LogMark) => Promise<string | null>;
  onPoll?: (lastAnswer: string) => void;
}): Promise<HealthOutcome> {
  const stopWatch = new AbortController();
  const logFailure = new AbortController();
  let logLine: string | null = null;
  const watcher =
    opts.logPath !== null && opts.logMark !== null ? LogWatcher.at(opts.logPath, opts.logMark) : null;
  const watching = (async () => {
    if (!watcher) return;
    while (!stopWatch.signal.aborted) {
      const line = await watcher.poll().catch(() => null);
      if (line !== null) {
        logLine = line;
        logFailure.abort(new Error('GPU memory failure in the log'));
        return;
      }
      await sleep(200, stopWatch.signal).catch(() => undefined);
    }
  })();
  try {
    const { healthyAfterMs } = await waitHealthy({
      baseUrl: opts.baseUrl,
      deadlineMs: opts.deadlineMs,
      signal: AbortSignal.any([opts.signal, logFailure.signal]),
      onPoll: ({ lastAnswer }) => opts.onPoll?.(lastAnswer),
    });
    return { healthy: true, afterMs: healthyAfterMs };
  } catch (err) {
    if (opts.signal.aborted) throw abortReason(opts.signal);
    if (logLine !== null) return { healthy: false, why: 'log', lastAnswer: 'not healthy yet', logLine };
    if (!(err instanceof HealthTimeoutError)) throw err;
    return {
      healthy: false,
      why: 'deadline',
      lastAnswer: err.lastAnswer,
      logLine: await opts.logCause(opts.logMark),
    };
  } finally {
    stopWatch.abort();
    await watching;
  }
}

/** Names in the config that matter to the probe: the model it is served as, and the API key. */
function servedIdentity(yamlText: string): { model: string | null; apiKey: string | null } {
  let values: Record<string, unknown> = {};
  try {
    const parsed: unknown = parseYaml(yamlText, { version: '1.1' });
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      values = parsed as Record<string, unknown>;
  } catch {
    // applyChanges already read it; an odd file just leaves the model to /v1/models
  }
  const get = (key: string): unknown => values[key] ?? values[key.replace(/-/g, '_')];
  const text = (v: unknown): string | null =>
    typeof v === 'string' && v.trim() !== '' ? v : typeof v === 'number' ? String(v) : null;
  const served = get('served-model-name');
  const servedName = Array.isArray(served) ? text(served[0]) : text(served);
  const apiKey = get('api-key');
  return {
    model: servedName ?? text(get('model')),
    apiKey: Array.isArray(apiKey) ? text(apiKey[0]) : text(apiKey),
  };
}
