// The canary and the restore need nothing of the service but its ServiceAdapter: driven here through an
// in-memory service that records every call, they run the design's sequence (record, backup, apply,
// restart, healthy, probe, soak, promote; or restore the lease's backup and restart). The vLLM adapter
// itself runs against real processes in canary.test.ts and healctl-usage.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createRestoreService } from '../../src/activities/restore-service.js';
import { createRunCanary } from '../../src/activities/run-canary.js';
import type { CanaryInput, CandidateConfig } from '../../src/activities/types.js';
import type { LeaseRecord } from '../../src/service/config-file.js';
import type { ServiceAdapter } from '../../src/service/service-adapter.js';

interface MemoryService extends ServiceAdapter {
  calls: string[];
  config: string;
  healthyAfterRestart: boolean;
  /** Where the canary read the new start's report from: the mark before the restart command. */
  measuredFrom?: number | null;
}

function memoryService(config: string): MemoryService {
  const backups = new Map<string, string>();
  const records = new Map<string, LeaseRecord>();
  let previous: string | null = null;
  const s: MemoryService = {
    calls: [],
    config,
    healthyAfterRestart: true,
    baseUrl: 'memory://service',
    configPath: 'memory://config',
    restartTimeoutMs: 5_000,
    readConfig: async () => Buffer.from(s.config),
    readConfigIfAny: async () => Buffer.from(s.config),
    withChanges: (text, c) => `${text}|${c.id}`,
    async backup(leaseId) {
      s.calls.push('backup');
      if (!backups.has(leaseId)) backups.set(leaseId, s.config);
      return `memory://backup/${leaseId}`;
    },
    readBackup: async (leaseId) => (backups.has(leaseId) ? Buffer.from(backups.get(leaseId)!) : null),
    async writeConfig(text) {
      s.calls.push('apply');
      s.config = text;
    },
    async restoreBackup(leaseId) {
      s.calls.push('restore-backup');
      const changed = s.config !== backups.get(leaseId);
      s.config = backups.get(leaseId)!;
      return { changed };
    },
    async promote(leaseId) {
      s.calls.push('promote');
      previous = backups.get(leaseId)!;
      return 'memory://previous';
    },
    async rollbackToPrevious() {
      const changed = previous !== null && previous !== s.config;
      if (previous !== null) s.config = previous;
      return { previousPath: 'memory://previous', changed, rolledBackPath: null };
    },
    readLeaseRecord: async (leaseId) => records.get(leaseId) ?? null,
    async writeLeaseRecord(record) {
      s.calls.push(
        `record${record.restartRequestedAt ? ':restart' : ''}${record.promotedAt ? ':promoted' : ''}`,
      );
      records.set(record.leaseId, record);
    },
    async restart() {
      s.calls.push('restart');
      // The log grew while the command ran (the new start's banner, or the old process's last lines).
      return { commandMs: 1, logMark: 200, startMark: 100 };
    },
    async waitHealthy() {
      s.calls.push('wait-healthy');
      return s.healthyAfterRestart
        ? { healthy: true, afterMs: 1 }
        : { healthy: false, why: 'log', lastAnswer: 'connection refused', logLine: 'CUDA out of memory' };
    },
    checkHealth: async () => ({ ok: true }),
    planProbe: async () => ({ promptTokens: 16, outputTokens: 4, source: 'set for the test' }),
    async probe() {
      s.calls.push('probe');
      return {
        latencyMs: 5,
        askedPromptTokens: 16,
        askedOutputTokens: 4,
        promptTokens: 16,
        completionTokens: 4,
      };
    },
    measureVram: async () => ({
      measuredAt: new Date().toISOString(),
      gpus: [
        {
          index: 0,
          uuid: null,
          name: null,
          totalMb: 80_000,
          usedMb: 60_000,
          freeMb: 20_000,
          utilizationPct: 0,
        },
      ],
      processes: [],
    }),
    async startupMeasurement(startMark) {
      s.measuredFrom = startMark;
      return null;
    },
    followLog: () => ({ poll: async () => null }),
    logCause: async () => null,
  };
  return s;
}

const candidate: CandidateConfig = {
  id: 'gpu_memory_utilization=0.85',
  changes: { 'gpu-memory-utilization': 0.85 },
  predictedVramMb: 68_000,
  headroomMb: 12_000,
  fits: true,
  predictedDowntimeMs: 1_000,
  givesUp: '6% of the KV cache',
  why: 'test',
};
const input = (leaseId: string): CanaryInput => ({
  host: 'gpu-a',
  kind: 'vllm_oom',
  leaseId,
  candidate,
  healthDeadlineMs: 5_000,
  soakMs: 50,
});
const run = <A, R>(fn: (a: A) => Promise<R>, arg: A): Promise<R> =>
  new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }).run<
    [A],
    R,
    (a: A) => Promise<R>
  >(fn, arg);

test('a canary through the adapter: record, backup, apply, restart, healthy, probe, promote', async () => {
  const service = memoryService('original');
  const result = await run(createRunCanary({ service }), input('lease-1'));
  assert.equal(result.outcome, 'passed', result.reason);
  assert.deepEqual(service.calls, [
    'record',
    'backup',
    'apply',
    'record:restart',
    'restart',
    'wait-healthy',
    'probe',
    'promote',
    'record:restart:promoted',
  ]);
  assert.equal(service.measuredFrom, 100, 'the start-up report is read from before the restart command');
  assert.equal(service.config, `original|${candidate.id}`);
  assert.equal((await service.rollbackToPrevious()).changed, true);
  assert.equal(service.config, 'original');
});

test('a failed canary, then the restore, through the same adapter: the backup back and a restart', async () => {
  const service = memoryService('original');
  service.healthyAfterRestart = false;
  const result = await run(createRunCanary({ service }), input('lease-2'));
  assert.equal(result.outcome, 'failed');
  assert.match(result.reason, /CUDA out of memory/);
  service.healthyAfterRestart = true;
  service.calls.length = 0;
  const restored = await run(createRestoreService({ service }), {
    host: 'gpu-a',
    kind: 'vllm_oom',
    leaseId: 'lease-2',
    reason: 'canary failed',
  });
  assert.equal(typeof restored.downtimeMs, 'number');
  assert.deepEqual(service.calls, ['restore-backup', 'restart', 'wait-healthy', 'record:restart']);
  assert.equal(service.config, 'original');
});
