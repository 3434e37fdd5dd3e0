// Fault injection: the GPU-host worker is SIGKILLed at each step of a canary and of a restore
// (KLR_TEST_CRASH_AT, src/activities/crash-point.ts), three trials per step, every trial its own
// simulated GPU host (simulated vLLM + production worker process) on one dev server. Once a
// replacement worker runs, the service must be healthy on the promoted or the restored config, the
// lease released, no host latched, and the budget ledger charged exactly what the canary record says.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { type DevServerHandle, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import { recordSymptom } from '../../src/temporal/symptoms.js';
import { CRASH_POINTS, CRASH_SETTING, type CrashPoint } from '../../src/activities/crash-point.js';
import type { BudgetReport } from '../../src/activities/types.js';
import { eventually, healingState, hostState } from '../support/healing-harness.js';
import { SIM_MODEL_PROFILE, waitHealthy } from '../support/heal-stack.js';
import { type Scenario, startScenario } from '../support/heal-scenario.js';

const MINUTE = 60_000;
const TRIALS_PER_POINT = Number(process.env.KLR_CHAOS_KILL_TRIALS ?? 3);
/** Trials that run at once (each is a simulated vLLM and a worker process). */
const CONCURRENCY = Number(process.env.KLR_CHAOS_KILL_CONCURRENCY ?? 7);

let server: DevServerHandle | undefined;
let connection: Connection | undefined;
let client: Client;
let profileDir: string;
let wrongProfilePath: string;

before(async () => {
  server = await startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  // Restore steps need a canary that fails: a profile with half the model's KV heads takes each token's
  // KV cache for half its size, which calibration to vLLM's start-up report does not correct, so the
  // predictor picks a candidate vLLM then refuses to start (see test/e2e/canary-failures.test.ts).
  const truth = JSON.parse(await readFile(SIM_MODEL_PROFILE, 'utf8')) as { kvHeads: number };
  profileDir = await mkdtemp(join(tmpdir(), 'klr-chaos-profile-'));
  wrongProfilePath = join(profileDir, 'stale-profile.json');
  await writeFile(wrongProfilePath, JSON.stringify({ ...truth, kvHeads: truth.kvHeads / 2 }));
});

after(async () => {
  await connection?.close();
  await server?.stop();
  if (profileDir) await rm(profileDir, { recursive: true, force: true });
});

async function auditRecords(scenario: Scenario, host: string): Promise<BudgetReport[]> {
  const text = await readFile(join(scenario.dir, 'data', 'audit', `budget-${host}.jsonl`), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as BudgetReport);
}

async function trial(point: CrashPoint, n: number): Promise<void> {
  const host = `kill-${point.replace(':', '-')}-${n}-${process.pid}`;
  const restoring = point.startsWith('restore:');
  const scenario = await startScenario({
    host,
    temporalAddress: server!.address,
    windowOpenNow: true,
    ...(restoring
      ? {
          // 24 GiB GPU, 36 k context: the candidate the stale profile picks does not start.
          serving: { 'gpu-memory-utilization': 0.98, 'max-model-len': 36864, 'max-num-seqs': 256 },
          sim: { SIM_GPU_TOTAL_MB: '24576', SIM_STARTUP_MS: '1500' },
          workerModelProfile: wrongProfilePath,
        }
      : {
          serving: { 'gpu-memory-utilization': 0.98, 'max-model-len': 8192, 'max-num-seqs': 256 },
          // The canary's health wait lasts about the start-up time: long enough to be killed in.
          sim: { SIM_STARTUP_MS: '1500' },
        }),
    worker: { [CRASH_SETTING]: point },
  });
  try {
    const totalMb = restoring ? 24576 : 81559;
    const details = {
      family: 'torch_oom',
      allocMb: 2048,
      freeMb: Math.round(totalMb * 0.02),
      totalMb,
      gpu: 0,
    };
    for (let i = 1; i <= 3; i++)
      await recordSymptom(client, host, { kind: 'vllm_oom', id: `${host}:${i}`, details });

    // The worker kills itself at the crash point.
    const exit = await Promise.race([
      scenario.worker.proc,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`the worker did not reach ${point} within 3 minutes`)),
          3 * MINUTE,
        ).unref(),
      ),
    ]);
    assert.equal(
      exit.signal,
      'SIGKILL',
      `${host}: the worker ended by ${String(exit.signal ?? exit.exitCode)}`,
    );
    const killedAt = Date.now();
    await scenario.restartWorker({ [CRASH_SETTING]: undefined });

    const done = await eventually(
      `${host}: the canary to end after the crash`,
      async () => {
        const s = await healingState(client, host);
        return s.lastCanary && s.phase !== 'restoring' && s.phase !== 'canary_running' ? s : undefined;
      },
      4 * MINUTE,
    );
    const canary = done.lastCanary!;
    assert.ok(
      canary.outcome === 'promoted' || canary.outcome === 'restored',
      `${host}: canary ${canary.outcome}: ${canary.reason}`,
    );
    const config = await readFile(scenario.configPath, 'utf8');
    if (canary.outcome === 'restored') {
      assert.equal(config, scenario.originalConfig, `${host}: the old config is back byte for byte`);
    } else {
      for (const [key, value] of Object.entries(canary.changes))
        assert.match(config, new RegExp(`^${key}: ${String(value)}$`, 'm'), `${host}: promoted ${key}`);
    }
    await waitHealthy(`${scenario.service.baseUrl}/health`, 30_000);

    const hs = await hostState(client, host);
    assert.equal(hs.lease, null, `${host}: the lease is released`);
    assert.equal(hs.restoreFailure, null, `${host}: no restore failure latched`);
    assert.equal(hs.budgetSpentMs, canary.downtimeMs, `${host}: the ledger charged the canary record`);
    // The coordinator appends the audit record right after the release (an activity of its own).
    const audited = await eventually(`${host}: the audit record of the release`, async () =>
      (await auditRecords(scenario, host)).at(-1),
    );
    assert.equal(audited.event.downtimeMs, canary.downtimeMs, `${host}: the audit record agrees`);
    assert.equal(audited.budgetSpentMs, hs.budgetSpentMs, `${host}: the audit record's budget agrees`);
    console.log(
      `${point} #${n}: ${canary.outcome} ${Math.round((Date.now() - killedAt) / 1000)} s after the kill, charged ${canary.downtimeMs} ms (${canary.reason.slice(0, 100)})`,
    );
  } finally {
    await scenario.stop();
  }
}

describe(
  `worker SIGKILLed at each canary and restore step (${TRIALS_PER_POINT} trials each)`,
  { concurrency: CONCURRENCY },
  () => {
    for (let n = 1; n <= TRIALS_PER_POINT; n++)
      for (const point of CRASH_POINTS) it(`${point} #${n}`, () => trial(point, n));
  },
);
