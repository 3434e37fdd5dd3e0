// The canary's unhappy paths end to end, nothing scripted: the real dev server, production worker
// processes and the simulated vLLM. Two GPU hosts share one dev server and one maintenance window:
//  - "wrong profile": the worker's model profile names half the model's KV heads, so it takes each
//    token's KV cache for half its size; calibration to vLLM's start-up report corrects the KV cache's
//    size but not the tokens it holds, so the predictor's best candidate does not really fit; vLLM
//    refuses to start on it, the canary fails and the old config goes back: healthy on it, the budget
//    charged for both restarts;
//  - "killed worker": the worker is SIGKILLed while the candidate service is still starting; a new
//    worker takes over, and the service ends healthy on the promoted or the restored config.
// The window opens on the first minute boundary at least 30 s after the set-up (what arming both hosts
// needs, with room to spare on a busy machine), and the kill is watched for from the moment both hosts
// are armed, so that it lands while the candidate boots even while the other host's canary is checked.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { type DevServerHandle, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import { recordSymptom } from '../../src/temporal/symptoms.js';
import type { BudgetReport } from '../../src/activities/types.js';
import { decisionsOf, eventually, healingState, hostState } from '../support/healing-harness.js';
import { SIM_MODEL_PROFILE, waitHealthy } from '../support/heal-stack.js';
import { type Scenario, complete, startScenario, torchOomDetails } from '../support/heal-scenario.js';

const MINUTE = 60_000;
const WINDOW_LEAD_MS = 30_000;
const wrongProfileHost = `canary-fail-${process.pid}`;
const killedHost = `canary-kill-${process.pid}`;

let server: DevServerHandle | undefined;
let connection: Connection | undefined;
let client: Client;
let wrongProfile: Scenario | undefined;
let killed: Scenario | undefined;
let tearingDown = false;

before(async () => {
  server = await startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });

  // A 24 GiB GPU: at 0.98 the first request OOMs (headroom 492 MiB < the 2 GiB spike); 36864 tokens of
  // context fit at 0.98 (52 k tokens of KV cache) but not at 0.89 (34.6 k) — except in the wrong profile.
  // (A profile with the wrong weights no longer fools it: the start-up report calibrates that away.)
  const truth = JSON.parse(await readFile(SIM_MODEL_PROFILE, 'utf8')) as { kvHeads: number };
  const profileDir = await mkdtemp(join(tmpdir(), 'klr-profile-'));
  const wrongProfilePath = join(profileDir, 'stale-profile.json');
  await writeFile(wrongProfilePath, JSON.stringify({ ...truth, kvHeads: truth.kvHeads / 2 }));

  [wrongProfile, killed] = await Promise.all([
    startScenario({
      host: wrongProfileHost,
      temporalAddress: server.address,
      serving: { 'gpu-memory-utilization': 0.98, 'max-model-len': 36864, 'max-num-seqs': 256 },
      sim: { SIM_GPU_TOTAL_MB: '24576' },
      workerModelProfile: wrongProfilePath,
      windowLeadMs: WINDOW_LEAD_MS,
    }),
    startScenario({
      host: killedHost,
      temporalAddress: server.address,
      serving: { 'gpu-memory-utilization': 0.98, 'max-model-len': 8192, 'max-num-seqs': 256 },
      // A slow start leaves time to kill the worker while the candidate is booting.
      sim: { SIM_STARTUP_MS: '4000' },
      windowLeadMs: WINDOW_LEAD_MS,
    }),
  ]);
  console.log(
    `maintenance windows ${wrongProfile.window} / ${killed.window} UTC, open in ${Math.round((wrongProfile.windowOpensAt - Date.now()) / 1000)} s`,
  );
});

after(async () => {
  tearingDown = true;
  await killDuringBoot?.catch(() => undefined);
  await Promise.all([wrongProfile?.stop(), killed?.stop()]);
  await connection?.close();
  await server?.stop();
});

/** Make the service OOM once and report it three times (what the observer would send): armed. */
async function armEscalation(scenario: Scenario, host: string): Promise<void> {
  const res = await complete(scenario.service.baseUrl);
  assert.equal(res.status, 500);
  const oomLine = await eventually('the OOM in the service log', async () => {
    const log = await readFile(scenario.service.logPath, 'utf8');
    return log.split('\n').find((l) => l.includes('CUDA out of memory'));
  });
  const details = torchOomDetails(oomLine);
  let last;
  for (let i = 1; i <= 3; i++) {
    last = await recordSymptom(client, host, { kind: 'vllm_oom', id: `${host}:${i}`, details });
  }
  assert.equal(last?.armed, true);
}

/** Supervisor journal lines "Started service" at or after `since` (one per restart). */
async function restartsSince(scenario: Scenario, since: number): Promise<number[]> {
  const log = await readFile(scenario.service.logPath, 'utf8');
  return log
    .split('\n')
    .filter((l) => /supervisor\[\d+\]: Started service/.test(l))
    .map((l) => Date.parse(l.slice(0, l.indexOf(' '))))
    .filter((t) => t >= since);
}

async function auditRecords(scenario: Scenario, host: string): Promise<BudgetReport[]> {
  const text = await readFile(join(scenario.dir, 'data', 'audit', `budget-${host}.jsonl`), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as BudgetReport);
}

const untilCanaryEnds = (host: string, scenario: Scenario) =>
  eventually(
    `the canary on ${host} to end`,
    async () => {
      const s = await healingState(client, host);
      return s.lastCanary && s.phase !== 'restoring' && s.phase !== 'canary_running' ? s : undefined;
    },
    4 * MINUTE + Math.max(0, scenario.windowOpensAt - Date.now()),
  ).catch(async (err: unknown) => {
    // Say what the workflow did instead: its phase and last decisions.
    const s = await healingState(client, host);
    const last = s.decisions.slice(-6).map((d) => `${d.code}: ${d.reason}`);
    throw new Error(`${String(err)}; phase ${s.phase} (${s.next}); last decisions:\n${last.join('\n')}`);
  });

/**
 * The killed host's worker, SIGKILLed as soon as its canary restarts the service (the first restart after
 * the window opened; the candidate then loads for 4 s), and a new worker started with the same settings.
 * Started once both hosts are armed, so that it runs while the other host's canary is being checked.
 */
let killDuringBoot: Promise<{ restartAt: number; killedAt: number }> | undefined;

async function killWorkerAtCanaryRestart(
  scenario: Scenario,
): Promise<{ restartAt: number; killedAt: number }> {
  const deadline = Math.max(Date.now(), scenario.windowOpensAt) + 3 * MINUTE;
  let restartAt: number | undefined;
  while ((restartAt = (await restartsSince(scenario, scenario.windowOpensAt))[0]) === undefined) {
    if (tearingDown) throw new Error('the file ended before the canary restarted the service');
    if (Date.now() > deadline) throw new Error('the canary did not restart the service within 3 minutes');
    await delay(50);
  }
  scenario.worker.proc.kill('SIGKILL');
  await scenario.worker.proc;
  const killedAt = Date.now();
  await scenario.restartWorker();
  return { restartAt, killedAt };
}

test('both hosts are armed and wait for the window', async () => {
  assert.ok(wrongProfile && killed);
  await Promise.all([armEscalation(wrongProfile, wrongProfileHost), armEscalation(killed, killedHost)]);
  for (const host of [wrongProfileHost, killedHost]) {
    const s = await eventually('waiting for the window', async () => {
      const st = await healingState(client, host);
      return st.phase === 'waiting_for_window' ? st : undefined;
    });
    assert.equal(s.lastCanary, null);
  }
  killDuringBoot = killWorkerAtCanaryRestart(killed);
  killDuringBoot.catch(() => undefined); // awaited (and its failure reported) by the killed-worker test
  console.log(`both armed; the window opens in ${Math.round((killed.windowOpensAt - Date.now()) / 1000)} s`);
});

test('a candidate that does not really fit is restored: healthy on the old config, both restarts charged', async () => {
  assert.ok(wrongProfile);
  const done = await untilCanaryEnds(wrongProfileHost, wrongProfile);
  const canary = done.lastCanary!;
  assert.equal(canary.outcome, 'restored', `canary ${canary.outcome}: ${canary.reason}`);
  assert.match(canary.reason, /failed to start|not healthy/);
  assert.match(canary.reason, /KV cache/, 'the reason quotes vLLM’s own start-up error');
  const failed = decisionsOf(done, 'canary_failed')[0];
  assert.ok(failed, 'the failure is a recorded decision');
  assert.equal(failed.params.reason, canary.reason);

  // The old config is back byte for byte, and the service runs it.
  assert.equal(await readFile(wrongProfile.configPath, 'utf8'), wrongProfile.originalConfig);
  await waitHealthy(`${wrongProfile.service.baseUrl}/health`, 10_000);
  const models = (await (await fetch(`${wrongProfile.service.baseUrl}/v1/models`)).json()) as {
    data: { id: string }[];
  };
  assert.equal(models.data[0]?.id, 'llama-3.1-8b');

  // Two restarts in the window: the candidate's and the restore's; the budget is charged for both.
  const restarts = await restartsSince(wrongProfile, wrongProfile.windowOpensAt);
  assert.equal(restarts.length, 2, `restarts since the window opened: ${restarts.length}`);
  const hs = await hostState(client, wrongProfileHost);
  // The coordinator appends the audit record right after the release (an activity of its own).
  const scenario = wrongProfile;
  const audit = await eventually('the audit record of the release', async () =>
    (await auditRecords(scenario, wrongProfileHost)).at(-1),
  );
  assert.equal(audit.event.outcome, 'restored');
  const { canaryDowntimeMs, restoreDowntimeMs } = audit.event.canary!;
  assert.ok(canaryDowntimeMs > 0 && restoreDowntimeMs !== null && restoreDowntimeMs > 0);
  assert.equal(canary.downtimeMs, canaryDowntimeMs + restoreDowntimeMs);
  assert.equal(hs.budgetSpentMs, canary.downtimeMs);
  assert.equal(hs.lease, null, 'the lease is released');
  assert.ok(hs.cooldownLeftMs > 0, 'a cooldown started');
  console.log(
    `wrong profile: canary ${canary.candidateId} failed after ${canaryDowntimeMs} ms, restore took ${restoreDowntimeMs} ms; budget spent ${hs.budgetSpentMs} ms`,
  );
});

test('a worker killed while the candidate boots: after a new worker starts, the service ends healthy', async () => {
  assert.ok(killed && killDuringBoot);
  const scenario = killed;
  // The canary's restart is the first one after the window opened: the worker was killed right then,
  // while the candidate was still loading (4 s), and a new one started.
  const { restartAt, killedAt } = await killDuringBoot;
  console.log(`worker SIGKILLed ${killedAt - restartAt} ms after the canary's restart`);

  const done = await untilCanaryEnds(killedHost, scenario);
  const canary = done.lastCanary!;
  assert.ok(
    canary.outcome === 'promoted' || canary.outcome === 'restored',
    `canary ${canary.outcome}: ${canary.reason}`,
  );
  const config = await readFile(scenario.configPath, 'utf8');
  if (canary.outcome === 'restored') assert.equal(config, scenario.originalConfig);
  else
    for (const [key, value] of Object.entries(canary.changes))
      assert.match(config, new RegExp(`^${key}: ${String(value)}$`, 'm'));
  await waitHealthy(`${scenario.service.baseUrl}/health`, 15_000);

  const hs = await hostState(client, killedHost);
  assert.equal(hs.lease, null, 'the lease is released');
  assert.equal(hs.restoreFailure, null);
  assert.equal(hs.budgetSpentMs, canary.downtimeMs, 'the ledger charged what the canary record says');
  console.log(
    `killed worker: canary ${canary.outcome} (${canary.reason}); ${Date.now() - killedAt} ms from the kill to the end; downtime charged ${canary.downtimeMs} ms`,
  );
});
