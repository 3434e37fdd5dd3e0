// The runCanary activity: try a candidate config on the live service. Back up the config, write the
// candidate, restart the service with its own restart command, time the downtime (restart start → healthy)
// to the millisecond, send one real completion, measure VRAM, watch the log through a short soak. Passed:
// the candidate stays in the config file (promoted) and the config it replaced is kept as `.previous`.
//
// What the service does wrong is a `failed` result (the workflow then restores); what the host cannot do
// (read or write the config, run the restart command) is thrown as a non-retryable ApplicationFailure (the
// workflow restores too). Cancellation stops it promptly and is thrown as the CancelledFailure.
// The canary is never retried; every file step is keyed by the lease so that the restore converges anyway.
import { readFile } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { parse as parseYaml } from 'yaml';
import {
  ConfigFileError,
  atomicWriteFile,
  backupConfig,
  backupPathFor,
  readIfExists,
  readLeaseRecord,
  recordPromotion,
  sha256,
  writeLeaseRecord,
  type LeaseRecord,
} from '../service/config-file.js';
import {
  HealthTimeoutError,
  abortReason,
  ProbeError,
  checkHealth,
  firstServedModel,
  probeCompletion,
  sleep,
  waitHealthy,
} from '../service/health.js';
import { LogWatcher } from '../service/log-watch.js';
import { planProbe } from '../service/probe-size.js';
import { RestartCommandError, runRestartCommand } from '../service/restart-command.js';
import { readServiceStartupReport, startMeasurement } from '../service/startup-log.js';
import { ServingConfigError, applyChanges } from '../service/vllm-config.js';
import { crashPoint } from './crash-point.js';
import type { ServiceSettings } from './service-settings.js';
import type { CanaryInput, CanaryResult, StartMeasurement, VramSnapshot } from './types.js';

/** ApplicationFailure type of a canary the host could not carry out (config unwritable, restart impossible). */
export const CANARY_HOST_FAILED = 'CanaryHostFailed';

export type CanaryPhase = 'backup' | 'apply' | 'restart' | 'health' | 'probe' | 'soak' | 'promote';
export type RestorePhase = 'restore' | 'restart' | 'health';

// ------------------------------------------------------------------ shared with restoreService

/** Heartbeats with the current phase: on every phase change and every second in between. */
export class Progress<P extends string> {
  private phase: P | null = null;
  private extra: Record<string, unknown> = {};
  private timer: NodeJS.Timeout | undefined;
  private readonly started = performance.now();

  constructor(
    private readonly ctx: Context,
    private readonly base: Record<string, unknown>,
    private readonly everyMs = 1_000,
  ) {}

  start(): this {
    this.timer = setInterval(() => this.beat(), this.everyMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get current(): P | null {
    return this.phase;
  }

  enter(phase: P, extra: Record<string, unknown> = {}): void {
    this.phase = phase;
    this.extra = { ...this.extra, ...extra };
    this.beat();
  }

  note(extra: Record<string, unknown>): void {
    this.extra = { ...this.extra, ...extra };
  }

  beat(): void {
    this.ctx.heartbeat({
      ...this.base,
      phase: this.phase,
      elapsedMs: Math.round(performance.now() - this.started),
      ...this.extra,
    });
  }
}

/** The first GPU memory failure the service logged since `offset`, or null (no log, nothing found). */
export async function logCause(logPath: string | null, offset: number | null): Promise<string | null> {
  if (logPath === null || offset === null) return null;
  try {
    return await LogWatcher.at(logPath, offset).poll(true);
  } catch {
    return null;
  }
}

export type HealthOutcome =
  | { healthy: true; afterMs: number }
  | { healthy: false; why: 'log' | 'deadline'; lastAnswer: string; logLine: string | null };

/**
 * Wait for `/health` while reading the service's log from `logOffset`: a GPU memory failure in the log (the
 * engine died at start-up) ends the wait at once instead of at the deadline. Cancellation rejects.
 */
export async function waitHealthyWatchingLog(opts: {
  baseUrl: string;
  deadlineMs: number;
  signal: AbortSignal;
  logPath: string | null;
  logOffset: number | null;
  onPoll?: (lastAnswer: string) => void;
}): Promise<HealthOutcome> {
  const stopWatch = new AbortController();
  const logFailure = new AbortController();
  let logLine: string | null = null;
  const watcher =
    opts.logPath !== null && opts.logOffset !== null ? LogWatcher.at(opts.logPath, opts.logOffset) : null;
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
    if (logLine !== null) {
      return { healthy: false, why: 'log', lastAnswer: 'not healthy yet', logLine };
    }
    if (!(err instanceof HealthTimeoutError)) throw err;
    return {
      healthy: false,
      why: 'deadline',
      lastAnswer: err.lastAnswer,
      logLine: await logCause(opts.logPath, opts.logOffset),
    };
  } finally {
    stopWatch.abort();
    await watching;
  }
}

export const shorten = (line: string, max = 300): string =>
  line.length > max ? `${line.slice(0, max)}…` : line;

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

/** ApplicationFailure for something the host cannot do: thrown, never retried. */
function hostFailure(err: unknown, type = CANARY_HOST_FAILED): ApplicationFailure {
  const message = err instanceof Error ? err.message : String(err);
  return ApplicationFailure.create({
    message,
    type,
    nonRetryable: true,
    cause: err instanceof Error ? err : undefined,
  });
}

// ------------------------------------------------------------------ the canary

export interface RunCanaryDeps {
  service: ServiceSettings;
  measureVram: () => Promise<VramSnapshot>;
  /** The GPUs the service runs on (nvidia-smi indexes); default every GPU in the measurement. */
  gpuIndexes?: readonly number[];
  /** Longest the probe may take, ms (default 30000: a cold first request compiles kernels). */
  probeTimeoutMs?: number;
  /** Between two VRAM measurements during the soak, ms (default 5000). */
  vramIntervalMs?: number;
  /** Between two /health checks during the soak, ms (default 2000). */
  soakHealthIntervalMs?: number;
}

/** The canary's result reason: one sentence. */
const sentence = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1).replace(/\.?$/, '.');

class VramSampler {
  peakMb: number | null = null;
  failure: string | null = null;
  samples = 0;
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly measure: () => Promise<VramSnapshot>,
    private readonly gpuIndexes: readonly number[] | undefined,
  ) {}

  /** Start one measurement unless one is still running. */
  sample(): void {
    if (this.inFlight) return;
    this.inFlight = this.measure()
      .then((snapshot) => {
        const gpus = snapshot.gpus.filter((g) => !this.gpuIndexes || this.gpuIndexes.includes(g.index));
        const used = gpus.map((g) => g.usedMb).filter((v): v is number => v !== null);
        if (used.length === 0) {
          this.failure ??= 'the measurement reported no used memory for the service GPU';
          return;
        }
        this.samples++;
        this.peakMb = Math.max(this.peakMb ?? 0, ...used);
      })
      .catch((err: unknown) => {
        this.failure ??= err instanceof Error ? err.message : String(err);
      })
      .finally(() => {
        this.inFlight = null;
      });
  }

  async settle(): Promise<void> {
    await this.inFlight;
  }
}

/** The runCanary activity. */
export function createRunCanary(deps: RunCanaryDeps): (input: CanaryInput) => Promise<CanaryResult> {
  const { service } = deps;
  const probeTimeoutMs = deps.probeTimeoutMs ?? 30_000;
  const vramIntervalMs = deps.vramIntervalMs ?? 5_000;
  const soakHealthIntervalMs = deps.soakHealthIntervalMs ?? 2_000;

  return async function runCanary(input: CanaryInput): Promise<CanaryResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const { configPath, backupDir } = service;
    const progress = new Progress<CanaryPhase>(ctx, {
      leaseId: input.leaseId,
      candidateId: input.candidate.id,
    }).start();
    // What vLLM printed about its memory when the candidate started (the prediction's check), once read.
    let measured: StartMeasurement | null = null;
    const readMeasurement = async (logOffset: number | null) => {
      if (service.logPath === null || logOffset === null) return;
      measured = startMeasurement(
        await readServiceStartupReport(service.logPath, logOffset),
        input.candidate,
      );
    };
    const failed = (reason: string, downtimeMs: number | null, measuredVramMb: number | null = null) => {
      ctx.log.warn('canary failed', { leaseId: input.leaseId, candidate: input.candidate.id, reason });
      return {
        outcome: 'failed' as const,
        reason: sentence(reason),
        downtimeMs,
        measuredVramMb,
        ...(measured ? { measured } : {}),
      };
    };

    try {
      // ---- backup: the live config, once per lease; the candidate is built from it
      progress.enter('backup');
      let live: Buffer;
      try {
        live = await readFile(configPath);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new ConfigFileError(
          `vLLM config ${configPath} ${code === 'ENOENT' ? 'does not exist' : `cannot be read: ${(err as Error).message}`} (KLR_SERVICE_CONFIG)`,
          configPath,
          code ?? null,
        );
      }
      // A backup of this lease already there (a rerun) is the original: the live file may be the candidate.
      const earlier = await readIfExists(backupPathFor(configPath, backupDir, input.leaseId));
      const original = (earlier ?? live).toString('utf8');
      const candidateText = applyChanges(original, input.candidate.changes, configPath);
      // The record first (what is about to change), then the backup: a restore can check either way.
      let record: LeaseRecord | null = await readLeaseRecord(configPath, backupDir, input.leaseId);
      if (record === null) {
        record = {
          leaseId: input.leaseId,
          configPath,
          candidateId: input.candidate.id,
          createdAt: new Date().toISOString(),
          originalSha256: sha256(original),
          candidateSha256: sha256(candidateText),
        };
        await writeLeaseRecord(configPath, backupDir, record);
      }
      const backupPath = await backupConfig(configPath, backupDir, input.leaseId);
      progress.note({ backupPath });
      signal.throwIfAborted();
      // The probe's size, from the live service's own traffic: read before the restart resets its metrics.
      const probeSize = await planProbe({
        baseUrl: service.baseUrl,
        apiKey: servedIdentity(original).apiKey,
        settings: service.probe,
        configText: original,
        configPath,
        signal,
      });
      progress.note({ probePromptTokens: probeSize.promptTokens, probeOutputTokens: probeSize.outputTokens });

      // ---- apply: the candidate, atomically, keeping every other byte of the file
      progress.enter('apply');
      crashPoint('canary:apply');
      if (live.toString('utf8') !== candidateText) await atomicWriteFile(configPath, candidateText);
      signal.throwIfAborted();

      // ---- restart: the service's own command; the downtime clock starts here
      progress.enter('restart');
      crashPoint('canary:restart');
      record = { ...record, restartRequestedAt: new Date().toISOString() };
      await writeLeaseRecord(configPath, backupDir, record);
      const restartStarted = performance.now();
      const restarting = runRestartCommand(service.restartCommand, service.restartTimeoutMs, signal);
      crashPoint('canary:restart-command'); // the command is spawned by now
      const restart = await restarting;
      progress.note({ restartCommandMs: restart.ms });
      // The log from here on is the new process's: a crash-looping service can still print its last OOM
      // while the restart command stops it, and that failure is the old config's, not the candidate's.
      const logOffset = service.logPath !== null ? await LogWatcher.sizeOf(service.logPath) : null;

      // ---- health: the rest of the deadline, counted from the restart's start; a memory failure in the
      // log ends the wait early (the engine died at start-up and will not come back by itself)
      progress.enter('health');
      crashPoint('canary:health');
      const health = await waitHealthyWatchingLog({
        baseUrl: service.baseUrl,
        deadlineMs: input.healthDeadlineMs - (performance.now() - restartStarted),
        signal,
        logPath: service.logPath,
        logOffset,
        onPoll: (lastAnswer) => progress.note({ lastAnswer }),
      });
      // The downtime ends with the first healthy answer: reading the start-up report is not downtime.
      const healthyAt = performance.now();
      await readMeasurement(logOffset);
      if (!health.healthy) {
        const waited = Math.round(healthyAt - restartStarted);
        return failed(
          health.why === 'log'
            ? `the service failed to start (not healthy ${waited} ms after the restart); its log says: ${shorten(health.logLine ?? '')}`
            : `the service was not healthy within ${input.healthDeadlineMs} ms of the restart (last answer: ${health.lastAnswer})${health.logLine ? `; its log says: ${shorten(health.logLine)}` : ''}`,
          null,
        );
      }
      const downtimeMs = Math.round(healthyAt - restartStarted);
      progress.enter('probe', { downtimeMs });

      // ---- probe: one realistic completion (a prompt and an output of the service's own size)
      const identity = servedIdentity(candidateText);
      const model =
        service.model ??
        identity.model ??
        (await firstServedModel(service.baseUrl, probeTimeoutMs, signal)) ??
        'default';
      let latencyMs: number;
      let probeText: string;
      try {
        const probe = await probeCompletion({
          baseUrl: service.baseUrl,
          model,
          // a long output takes its time: ~50 ms a token on a cold engine
          timeoutMs: deps.probeTimeoutMs ?? Math.max(probeTimeoutMs, 10_000 + 50 * probeSize.outputTokens),
          apiKey: identity.apiKey,
          signal,
          promptTokens: probeSize.promptTokens,
          outputTokens: probeSize.outputTokens,
        });
        latencyMs = probe.latencyMs;
        const n = (v: number) => Math.round(v).toLocaleString('en-US');
        probeText = `probe: ${n(probe.promptTokens ?? probe.askedPromptTokens)}-token prompt, ${n(probe.completionTokens ?? probe.askedOutputTokens)} tokens out in ${n(latencyMs)} ms (${probeSize.source})`;
      } catch (err) {
        if (!(err instanceof ProbeError)) throw err;
        await sleep(100, signal); // let the log catch up with a crash the probe caused
        const cause = await logCause(service.logPath, logOffset);
        const sized = err.kind === 'failed' ? '' : `; probe size: ${probeSize.source}`;
        return failed(
          `${err.message}${sized}${cause ? `; its log says: ${shorten(cause)}` : ''}`,
          downtimeMs,
        );
      }

      // ---- soak: VRAM (peak), the log from the restart on, /health
      progress.enter('soak', { probeLatencyMs: latencyMs });
      crashPoint('canary:soak');
      const vram = new VramSampler(deps.measureVram, deps.gpuIndexes);
      vram.sample();
      const watcher = service.logPath !== null ? LogWatcher.at(service.logPath, logOffset ?? 0) : null;
      const soakStarted = performance.now();
      const soakEnd = soakStarted + Math.max(0, input.soakMs);
      let nextVram = soakStarted + vramIntervalMs;
      let nextHealth = soakStarted + soakHealthIntervalMs;
      let problem: string | null = null;
      for (;;) {
        const now = performance.now();
        const last = now >= soakEnd;
        const oom = watcher ? await watcher.poll(last) : null;
        if (oom !== null) {
          problem = `GPU memory failure ${Math.round((now - soakStarted) / 100) / 10} s into the soak: ${shorten(oom)}`;
          break;
        }
        if (last || now >= nextHealth) {
          nextHealth = now + soakHealthIntervalMs;
          const health = await checkHealth(
            service.baseUrl,
            Math.min(5_000, soakHealthIntervalMs * 2),
            signal,
          );
          if (!health.ok) {
            const cause = watcher ? await watcher.poll(true) : null;
            problem = `the service stopped being healthy ${Math.round((now - soakStarted) / 100) / 10} s into the soak (${health.answer})${cause ? `; its log says: ${shorten(cause)}` : ''}`;
            break;
          }
        }
        if (last) break;
        if (now >= nextVram) {
          nextVram = now + vramIntervalMs;
          vram.sample();
        }
        progress.note({ soakedMs: Math.round(now - soakStarted), peakVramMb: vram.peakMb });
        await sleep(Math.min(250, Math.max(1, soakEnd - now)), signal);
      }
      vram.sample();
      await vram.settle();
      signal.throwIfAborted();
      const vramText =
        vram.peakMb !== null
          ? `peak ${vram.peakMb} MiB used on the service's GPU`
          : `VRAM not measured (${vram.failure ?? 'no measurement'})`;
      if (vram.failure !== null) {
        ctx.log.warn('VRAM measurement failed during the canary', { failure: vram.failure });
      }
      if (problem !== null) return failed(`${problem}; ${vramText}`, downtimeMs, vram.peakMb);

      // ---- promote: the candidate stays in the config; the config it replaced becomes `.previous`
      progress.enter('promote');
      const previousPath = await recordPromotion(configPath, backupDir, input.leaseId);
      await writeLeaseRecord(configPath, backupDir, { ...record, promotedAt: new Date().toISOString() });
      ctx.log.info('canary passed', { leaseId: input.leaseId, downtimeMs, previousPath });
      return {
        outcome: 'passed',
        reason: sentence(
          `healthy ${downtimeMs} ms after the restart, ${probeText}, and ${Math.round(input.soakMs / 1000)} s of soak showed no GPU memory failure; ${vramText}`,
        ),
        downtimeMs,
        measuredVramMb: vram.peakMb,
        ...(measured ? { measured } : {}),
      };
    } catch (err) {
      if (signal.aborted) throw abortReason(signal);
      if (err instanceof ApplicationFailure) throw err;
      if (err instanceof ConfigFileError || err instanceof RestartCommandError) throw hostFailure(err);
      if (err instanceof ServingConfigError) {
        throw hostFailure(
          new Error(`candidate ${input.candidate.id} cannot be written to the config: ${err.message}`),
        );
      }
      throw err;
    } finally {
      progress.stop();
    }
  };
}
