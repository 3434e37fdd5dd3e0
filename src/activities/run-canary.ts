// The runCanary activity: try a candidate config on the live service, through its ServiceAdapter. Back up
// the config, write the candidate, restart the service, time the downtime (restart start → healthy) to the
// millisecond, send one real completion, measure VRAM, watch the log through a short soak. Passed: the
// candidate stays in the config (promoted) and the config it replaced is kept for a rollback.
//
// What the service does wrong is a `failed` result (the workflow then restores); what the host cannot do
// (read or write the config, run the restart command) is thrown as a non-retryable ApplicationFailure (the
// workflow restores too). Cancellation stops it promptly and is thrown as the CancelledFailure.
// The canary is never retried; every file step is keyed by the lease so that the restore converges anyway.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { ConfigFileError, sha256, type LeaseRecord } from '../service/config-file.js';
import { abortReason, ProbeError, sleep } from '../service/health.js';
import { RestartCommandError } from '../service/restart-command.js';
import type { ServiceAdapter } from '../service/service-adapter.js';
import { ServingConfigError } from '../service/vllm-config.js';
import { crashPoint } from './crash-point.js';
import { type CanaryPhase, Progress, shorten } from './progress.js';
import type { CanaryInput, CanaryResult, StartMeasurement, VramSnapshot } from './types.js';

/** ApplicationFailure type of a canary the host could not carry out (config unwritable, restart impossible). */
export const CANARY_HOST_FAILED = 'CanaryHostFailed';

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
  service: ServiceAdapter;
  /** The GPUs the service runs on (nvidia-smi indexes); default every GPU in the measurement. */
  gpuIndexes?: readonly number[];
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
  const vramIntervalMs = deps.vramIntervalMs ?? 5_000;
  const soakHealthIntervalMs = deps.soakHealthIntervalMs ?? 2_000;

  return async function runCanary(input: CanaryInput): Promise<CanaryResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const progress = new Progress<CanaryPhase>(ctx, {
      leaseId: input.leaseId,
      candidateId: input.candidate.id,
    }).start();
    // What vLLM printed about its memory when the candidate started (the prediction's check), once read.
    let measured: StartMeasurement | null = null;
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
      const live = await service.readConfig();
      // A backup of this lease already there (a rerun) is the original: the live file may be the candidate.
      const original = ((await service.readBackup(input.leaseId)) ?? live).toString('utf8');
      const candidateText = service.withChanges(original, input.candidate);
      // The record first (what is about to change), then the backup: a restore can check either way.
      let record: LeaseRecord | null = await service.readLeaseRecord(input.leaseId);
      if (record === null) {
        record = {
          leaseId: input.leaseId,
          configPath: service.configPath,
          candidateId: input.candidate.id,
          createdAt: new Date().toISOString(),
          originalSha256: sha256(original),
          candidateSha256: sha256(candidateText),
        };
        await service.writeLeaseRecord(record);
      }
      const backupPath = await service.backup(input.leaseId);
      progress.note({ backupPath });
      signal.throwIfAborted();
      // The probe's size, from the live service's own traffic: read before the restart resets its metrics.
      const probeSize = await service.planProbe(original, signal);
      progress.note({ probePromptTokens: probeSize.promptTokens, probeOutputTokens: probeSize.outputTokens });

      // ---- apply: the candidate, atomically, keeping every other byte of the file
      progress.enter('apply');
      crashPoint('canary:apply');
      if (live.toString('utf8') !== candidateText) await service.writeConfig(candidateText);
      signal.throwIfAborted();

      // ---- restart: the service's own command; the downtime clock starts here
      progress.enter('restart');
      crashPoint('canary:restart');
      record = { ...record, restartRequestedAt: new Date().toISOString() };
      await service.writeLeaseRecord(record);
      const restartStarted = performance.now();
      const restarting = service.restart(signal);
      crashPoint('canary:restart-command'); // the command is spawned by now
      const { commandMs, logMark, startMark } = await restarting;
      progress.note({ restartCommandMs: commandMs });

      // ---- health: the rest of the deadline, counted from the restart's start; a memory failure in the
      // log ends the wait early (the engine died at start-up and will not come back by itself)
      progress.enter('health');
      crashPoint('canary:health');
      const health = await service.waitHealthy({
        deadlineMs: input.healthDeadlineMs - (performance.now() - restartStarted),
        logMark,
        signal,
        onPoll: (lastAnswer) => progress.note({ lastAnswer }),
      });
      // The downtime ends with the first healthy answer: reading the start-up report is not downtime.
      const healthyAt = performance.now();
      measured = await service.startupMeasurement(startMark, input.candidate);
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
      let latencyMs: number;
      let probeText: string;
      try {
        const probe = await service.probe(candidateText, probeSize, signal);
        latencyMs = probe.latencyMs;
        const n = (v: number) => Math.round(v).toLocaleString('en-US');
        probeText = `probe: ${n(probe.promptTokens ?? probe.askedPromptTokens)}-token prompt, ${n(probe.completionTokens ?? probe.askedOutputTokens)} tokens out in ${n(latencyMs)} ms (${probeSize.source})`;
      } catch (err) {
        if (!(err instanceof ProbeError)) throw err;
        await sleep(100, signal); // let the log catch up with a crash the probe caused
        const cause = await service.logCause(logMark);
        const sized = err.kind === 'failed' ? '' : `; probe size: ${probeSize.source}`;
        return failed(
          `${err.message}${sized}${cause ? `; its log says: ${shorten(cause)}` : ''}`,
          downtimeMs,
        );
      }

      // ---- soak: VRAM (peak), the log from the restart on, /health
      progress.enter('soak', { probeLatencyMs: latencyMs });
      crashPoint('canary:soak');
      const vram = new VramSampler(() => service.measureVram(), deps.gpuIndexes);
      vram.sample();
      const watcher = service.followLog(logMark);
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
          const health = await service.checkHealth(Math.min(5_000, soakHealthIntervalMs * 2), signal);
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
      const previousPath = await service.promote(input.leaseId);
      await service.writeLeaseRecord({ ...record, promotedAt: new Date().toISOString() });
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
