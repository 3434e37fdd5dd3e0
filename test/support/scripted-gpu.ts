// GPU-side activities whose behaviour a test scripts: what each canary and restore does, and a journal
// of what ran when, so that tests can check overlaps and the order of actions.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type {
  CanaryInput,
  CanaryResult,
  CandidateConfig,
  HostActivities,
  PredictInput,
  Recommendation,
  RestoreInput,
  VramSnapshot,
} from '../../src/activities/types.js';
import { RESTORE_FAILED } from '../../src/domain/failure-types.js';

/**
 * pass/fail: a result; throw: an activity failure; hang: until cancelled; slow: passes after 1.5 s;
 * gated: passes once the test calls `openGate()` (the canary holds the lease until then).
 */
export type CanaryScript = 'pass' | 'fail' | 'throw' | 'hang' | 'slow' | 'gated';
export type RestoreScript = 'ok' | 'fail';

export interface JournalEntry {
  action: 'canary:start' | 'canary:end' | 'restore:start' | 'restore:end';
  host: string;
  kind: string;
  detail?: string;
  /** Real time (ms); only the order of entries is meaningful. */
  at: number;
}

export interface ScriptedGpu {
  activities: Pick<HostActivities, 'measureVram' | 'predictCandidates' | 'runCanary' | 'restoreService'>;
  journal: JournalEntry[];
  canaryScripts: CanaryScript[];
  restoreScripts: RestoreScript[];
  predictedDowntimeMs: number;
  canaryDowntimeMs: number;
  restoreDowntimeMs: number;
  /** Canaries currently running, per host: more than one is an invariant violation. */
  running: Map<string, number>;
  /** Lets every `gated` canary (running or to come) pass. */
  openGate(): void;
  maxConcurrentPerHost: number;
}

export function candidate(predictedDowntimeMs: number): CandidateConfig {
  return {
    id: 'gpu_memory_utilization=0.85',
    changes: { 'gpu-memory-utilization': 0.85 },
    predictedVramMb: 68_000,
    headroomMb: 12_000,
    fits: true,
    predictedDowntimeMs,
    givesUp: '6% of the KV cache',
    why: 'leaves room for the allocation that failed',
  };
}

export function scriptedGpu(
  init: Partial<Pick<ScriptedGpu, 'canaryScripts' | 'restoreScripts' | 'predictedDowntimeMs'>> = {},
): ScriptedGpu {
  let openGate = () => undefined as void;
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  const gpu: ScriptedGpu = {
    openGate: () => openGate(),
    journal: [],
    canaryScripts: init.canaryScripts ?? [],
    restoreScripts: init.restoreScripts ?? [],
    predictedDowntimeMs: init.predictedDowntimeMs ?? 20_000,
    canaryDowntimeMs: 15_000,
    restoreDowntimeMs: 12_000,
    running: new Map(),
    maxConcurrentPerHost: 0,
    activities: {
      async measureVram(): Promise<VramSnapshot> {
        return {
          measuredAt: new Date().toISOString(),
          gpus: [
            {
              index: 0,
              uuid: 'GPU-test',
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
      async predictCandidates(input: PredictInput): Promise<Recommendation> {
        return {
          at: new Date().toISOString(),
          basis: `scripted for ${input.kind} on ${input.host}`,
          candidates: [candidate(gpu.predictedDowntimeMs)],
        };
      },
      async runCanary(input: CanaryInput): Promise<CanaryResult> {
        const script = gpu.canaryScripts.shift() ?? 'pass';
        const log = (action: JournalEntry['action'], detail?: string) =>
          gpu.journal.push({
            action,
            host: input.host,
            kind: input.kind,
            at: Date.now(),
            ...(detail ? { detail } : {}),
          });
        const now = (gpu.running.get(input.host) ?? 0) + 1;
        gpu.running.set(input.host, now);
        gpu.maxConcurrentPerHost = Math.max(gpu.maxConcurrentPerHost, now);
        log('canary:start', script);
        try {
          if (script === 'gated') {
            const ctx = Context.current();
            let open = false;
            void gate.then(() => (open = true));
            while (!open) {
              ctx.heartbeat('waiting for the gate');
              await Promise.race([ctx.sleep(100), ctx.cancelled, gate]);
            }
          }
          if (script === 'hang') {
            const ctx = Context.current();
            for (;;) {
              ctx.heartbeat('waiting for health');
              await Promise.race([ctx.sleep(200), ctx.cancelled]);
            }
          }
          await new Promise((r) => setTimeout(r, script === 'slow' ? 1500 : 30));
          if (script === 'throw')
            throw ApplicationFailure.nonRetryable(
              'service did not come up: connection refused',
              'CanaryFailed',
            );
          if (script === 'fail')
            return {
              outcome: 'failed',
              reason: 'probe request failed: CUDA out of memory',
              downtimeMs: gpu.canaryDowntimeMs,
              measuredVramMb: 80_100,
            };
          return {
            outcome: 'passed',
            reason: 'healthy, probe answered, 67.9 GiB used',
            downtimeMs: gpu.canaryDowntimeMs,
            measuredVramMb: 69_500,
          };
        } finally {
          gpu.running.set(input.host, (gpu.running.get(input.host) ?? 1) - 1);
          log('canary:end', script);
        }
      },
      async restoreService(input: RestoreInput) {
        const script = gpu.restoreScripts.shift() ?? 'ok';
        gpu.journal.push({
          action: 'restore:start',
          host: input.host,
          kind: input.kind,
          at: Date.now(),
          detail: script,
        });
        await new Promise((r) => setTimeout(r, 20));
        gpu.journal.push({
          action: 'restore:end',
          host: input.host,
          kind: input.kind,
          at: Date.now(),
          detail: script,
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
