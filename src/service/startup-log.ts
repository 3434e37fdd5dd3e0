// vLLM's start-up report read from the service's log file (src/domain/startup-report.ts): the latest start
// in the last few MiB of the log that printed its KV cache, or the start after a given offset (a canary's
// candidate). Missing or unreadable log: no report (calibration is a refinement, never a reason to fail).
import { open } from 'node:fs/promises';
import type { CandidateConfig, StartMeasurement } from '../domain/recommendation.js';
import { type StartupReport, readStartupReport } from '../domain/startup-report.js';
import { MiB, type ModelProfile, type ServingConfig, kvBytesPerToken } from '../domain/vllm-memory-model.js';

/** How much of the log's end is read to find the latest start (a start prints well within this). */
export const STARTUP_TAIL_BYTES = 8 * MiB;

/** The latest start-up report in the log from `fromOffset` (default: its last {@link STARTUP_TAIL_BYTES}). */
export async function readServiceStartupReport(
  logPath: string,
  fromOffset?: number,
): Promise<StartupReport | null> {
  let handle;
  try {
    handle = await open(logPath, 'r');
  } catch {
    return null;
  }
  try {
    const { size } = await handle.stat();
    const start =
      fromOffset !== undefined ? Math.min(fromOffset, size) : Math.max(0, size - STARTUP_TAIL_BYTES);
    const length = Math.min(size - start, STARTUP_TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, start);
    const lines = buffer.toString('utf8').split('\n');
    if (start > 0 && fromOffset === undefined) lines.shift(); // a partial first line
    // The running config's figures: the latest start that printed them (the service may be restarting).
    // A canary's candidate: the start after its restart, whatever it printed.
    const report = readStartupReport(lines, fromOffset === undefined ? 'measured' : 'latest');
    return Object.keys(report).length > 0 ? report : null;
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}

/** The KV cache vLLM kept, MiB: as printed, or from its size in tokens (V1 0.8 prints only tokens). */
export function measuredKvMb(
  report: StartupReport,
  model: ModelProfile,
  config: ServingConfig,
): number | null {
  if (report.kvCacheGiB !== undefined) return report.kvCacheGiB * 1024;
  if (report.kvTokens !== undefined) return (report.kvTokens * kvBytesPerToken(model, config)) / MiB;
  return null;
}

/**
 * Why the report cannot be the running config's (it describes another max-model-len or utilization:
 * a config written but not restarted yet), or null when nothing it printed disagrees.
 */
export function reportMismatch(report: StartupReport, config: ServingConfig): string | null {
  const len = report.maxConcurrency?.tokensPerRequest;
  if (len !== undefined && len !== config.maxModelLen) {
    return `the log's last start ran max-model-len ${len}, the config says ${config.maxModelLen} (not restarted since?)`;
  }
  const u = report.utilization;
  if (u !== undefined && Math.abs(u - config.gpuMemoryUtilization) > 0.005) {
    return `the log's last start ran gpu-memory-utilization ${u}, the config says ${config.gpuMemoryUtilization} (not restarted since?)`;
  }
  return null;
}

/** A start's measurement for a canary's record (MiB), or none when the log printed no KV cache figure. */
export function startMeasurement(
  report: StartupReport | null,
  candidate: CandidateConfig,
): StartMeasurement | null {
  if (report === null || (report.kvCacheGiB === undefined && report.kvTokens === undefined)) return null;
  const bytesPerToken =
    candidate.predictedKvMb !== undefined && candidate.predictedKvTokens
      ? (candidate.predictedKvMb * MiB) / candidate.predictedKvTokens
      : null;
  const kvCacheMb =
    report.kvCacheGiB !== undefined
      ? report.kvCacheGiB * 1024
      : report.kvTokens !== undefined && bytesPerToken !== null
        ? (report.kvTokens * bytesPerToken) / MiB
        : null;
  return {
    vllmVersion: report.version ?? null,
    kvCacheMb: kvCacheMb === null ? null : Math.round(kvCacheMb),
    kvTokens: report.kvTokens ?? null,
    weightsMb: report.weightsGiB === undefined ? null : Math.round(report.weightsGiB * 1024),
  };
}
