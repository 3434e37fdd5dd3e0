// The GPU side of one host in a chaos schedule: canaries and restores do what the schedule scripted
// (pass, fail, throw, hang: never healthy until the deadline, slow; restore ok or fail), a simulated service records which config it runs
// and whether it is healthy, and a journal records every step with the server's clock, so that the
// invariants can be checked afterwards against what the host really did.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type {
  CanaryInput,
  CanaryResult,
  HostActivities,
  Recommendation,
  RestoreInput,
  VramSnapshot,
} from '../../src/activities/types.js';
import { RESTORE_FAILED } from '../../src/domain/failure-types.js';
import { type CanaryScript, type RestoreScript, candidate } from './scripted-gpu.js';

export interface ChaosJournalEntry {
  action: 'canary:start' | 'canary:end' | 'restore:start' | 'restore:end';
  host: string;
  kind: string;
  /** The script it followed, and for ends how it ended (passed, failed, threw, cancelled, ok, fail). */
  detail: string;
  /** The test server's clock when the step happened. */
  serverMs: number;
  /** For canary starts: when the workflow scheduled the activity (workflow time). */
  scheduledMs?: number;
  /** For canary starts: the candidate's predicted downtime and the budget the lease said was left. */
  predictedDowntimeMs?: number;
  budgetLeftMs?: number;
  leaseId?: string;
}

export interface ServiceModel {
  config: 'original' | 'candidate' | 'restored';
  healthy: boolean;
}

export type GpuActivities = Pick<
  HostActivities,
  'measureVram' | 'predictCandidates' | 'runCanary' | 'restoreService'
>;

export interface ChaosGpu {
  host: string;
  activities: GpuActivities;
  journal: ChaosJournalEntry[];
  canaryScripts: CanaryScript[];
  restoreScripts: RestoreScript[];
  predictedDowntimeMs: number;
  /** Real canary downtime as a fraction of the prediction (≤ 1: a canary never overruns its forecast). */
  downtimeFactor: number;
  restoreDowntimeMs: number;
  service: ServiceModel;
}

export function chaosGpu(
  host: string,
  serverTime: () => Promise<number>,
  init: Pick<
    ChaosGpu,
    'canaryScripts' | 'restoreScripts' | 'predictedDowntimeMs' | 'downtimeFactor' | 'restoreDowntimeMs'
  >,
): ChaosGpu {
  const gpu: ChaosGpu = {
    host,
    journal: [],
    service: { config: 'original', healthy: true },
    ...init,
    activities: {
      async measureVram(): Promise<VramSnapshot> {
        return {
          measuredAt: new Date().toISOString(),
          gpus: [
            {
              index: 0,
              uuid: 'GPU-chaos',
              name: 'NVIDIA H100 80GB HBM3',
              totalMb: 81_559,
              usedMb: 79_000,
              freeMb: 2_559,
              utilizationPct: 97,
            },
          ],
          processes: [],
        };
      },
      async predictCandidates(): Promise<Recommendation> {
        return {
          at: new Date().toISOString(),
          basis: `chaos schedule on ${host}`,
          candidates: [candidate(gpu.predictedDowntimeMs)],
        };
      },
      async runCanary(input: CanaryInput): Promise<CanaryResult> {
        const ctx = Context.current();
        const script = gpu.canaryScripts.shift() ?? 'pass';
        gpu.journal.push({
          action: 'canary:start',
          host: input.host,
          kind: input.kind,
          detail: script,
          serverMs: await serverTime(),
          scheduledMs: ctx.info.currentAttemptScheduledTimestampMs,
          predictedDowntimeMs: input.candidate.predictedDowntimeMs,
          budgetLeftMs: input.healthDeadlineMs,
          leaseId: input.leaseId,
        });
        // The candidate is applied and the service restarts: it is down until the canary says otherwise.
        gpu.service = { config: 'candidate', healthy: false };
        let ended = 'threw';
        try {
          if (script === 'hang') {
            // The service never becomes healthy: the canary waits out its whole health deadline (the
            // budget left) and fails. Waited in real time only briefly: the time-skipping server does
            // not skip time while an activity runs, so a long real wait would stall the schedule.
            for (let i = 0; i < 10; i++) {
              ctx.heartbeat('waiting for health');
              await Promise.race([ctx.sleep(30), ctx.cancelled]);
            }
            ended = 'failed';
            return {
              outcome: 'failed',
              reason: `not healthy within the health deadline of ${input.healthDeadlineMs} ms`,
              downtimeMs: input.healthDeadlineMs,
              measuredVramMb: null,
            };
          }
          await new Promise((r) => setTimeout(r, script === 'slow' ? 400 : 5));
          if (script === 'throw')
            throw ApplicationFailure.nonRetryable(
              'service did not come up: connection refused',
              'CanaryFailed',
            );
          const downtimeMs = Math.round(gpu.predictedDowntimeMs * gpu.downtimeFactor);
          if (script === 'fail') {
            ended = 'failed';
            return {
              outcome: 'failed',
              reason: 'probe request failed: CUDA out of memory',
              downtimeMs,
              measuredVramMb: 80_100,
            };
          }
          ended = 'passed';
          gpu.service = { config: 'candidate', healthy: true };
          return { outcome: 'passed', reason: 'healthy, probe answered', downtimeMs, measuredVramMb: 69_500 };
        } catch (err) {
          if (ctx.cancellationSignal.aborted) ended = 'cancelled';
          throw err;
        } finally {
          gpu.journal.push({
            action: 'canary:end',
            host: input.host,
            kind: input.kind,
            detail: ended,
            serverMs: await serverTime(),
          });
        }
      },
      async restoreService(input: RestoreInput) {
        const script = gpu.restoreScripts.shift() ?? 'ok';
        gpu.journal.push({
          action: 'restore:start',
          host: input.host,
          kind: input.kind,
          detail: script,
          serverMs: await serverTime(),
        });
        await new Promise((r) => setTimeout(r, 5));
        gpu.service =
          script === 'ok' ? { config: 'restored', healthy: true } : { config: 'restored', healthy: false };
        gpu.journal.push({
          action: 'restore:end',
          host: input.host,
          kind: input.kind,
          detail: script,
          serverMs: await serverTime(),
        });
        if (script === 'fail')
          throw ApplicationFailure.nonRetryable(
            'service stays down after restoring the backup',
            RESTORE_FAILED,
          );
        return { downtimeMs: gpu.restoreDowntimeMs };
      },
    },
  };
  return gpu;
}
