// The whole self-healing loop end to end, nothing scripted: the real dev server, the production worker
// process (src/workers/main.ts) and the simulated vLLM under its supervisor, all on loopback. An
// over-aggressive config OOMs at the first request; three symptoms arm the escalation; the healer waits
// for the maintenance window (opening on the first minute boundary at least 30 s after the set-up: what
// arming needs, with room to spare on a busy machine), then its canary writes a smaller
// gpu-memory-utilization, restarts the service through the supervisor and promotes it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { type DevServerHandle, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import { recordSymptom } from '../../src/temporal/symptoms.js';
import { decisionsOf, eventually, healingState, hostState } from '../support/healing-harness.js';
import { waitHealthy } from '../support/heal-stack.js';
import {
  MODEL,
  SERVED,
  type Scenario,
  complete,
  startScenario,
  torchOomDetails,
} from '../support/heal-scenario.js';

const host = `heal-e2e-${process.pid}`;
const GPU_TOTAL_MB = 81559; // the simulator's default H100 80GB
const MINUTE = 60_000;

let server: DevServerHandle | undefined;
let connection: Connection | undefined;
let client: Client;
let stack: Scenario | undefined;

before(async () => {
  const setupStart = Date.now();
  server = await startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  // Too aggressive: the first request OOMs (see docs/simulator.md).
  stack = await startScenario({
    host,
    temporalAddress: server.address,
    serving: { 'gpu-memory-utilization': 0.98, 'max-model-len': 8192, 'max-num-seqs': 256 },
    windowLeadMs: 30_000,
  });
  console.log(
    `maintenance window ${stack.window} UTC, opens in ${Math.round((stack.windowOpensAt - Date.now()) / 1000)} s (set-up took ${Date.now() - setupStart} ms)`,
  );
});

after(async () => {
  const t0 = Date.now();
  await stack?.stop();
  const t1 = Date.now();
  await connection?.close();
  await server?.stop();
  console.log(`teardown: worker and service ${t1 - t0} ms, dev server ${Date.now() - t1} ms`);
});

test('a CUDA OOM in the service arms the escalation, which waits for the maintenance window', async () => {
  assert.ok(stack);
  const { service, windowOpensAt } = stack;
  const res = await complete(service.baseUrl);
  assert.equal(res.status, 500);
  const oomLine = await eventually('the OOM in the service log', async () => {
    const log = await readFile(service.logPath, 'utf8');
    return log.split('\n').find((l) => l.includes('CUDA out of memory'));
  });
  const details = torchOomDetails(oomLine);
  assert.equal(details.allocMb, 2048);
  let last;
  for (let i = 1; i <= 3; i++) {
    last = await recordSymptom(client, host, {
      kind: 'vllm_oom',
      id: `e2e:${host}:${i}`,
      source: 'heal-cycle-test',
      details,
    });
  }
  assert.equal(last?.armed, true);
  assert.equal(last?.count24h, 3);

  const waiting = await eventually('waiting for the window', async () => {
    const s = await healingState(client, host);
    return s.phase === 'waiting_for_window' ? s : undefined;
  });
  assert.ok(Date.now() < windowOpensAt, 'the window must still be closed for this check');
  assert.equal(waiting.lastCanary, null);
  assert.equal(decisionsOf(waiting, 'canary_started').length, 0);
  console.log(
    `waiting: ${waiting.next} (the window opens in ${Math.round((windowOpensAt - Date.now()) / 1000)} s)`,
  );
});

test('once the window opens, the canary promotes a smaller gpu-memory-utilization', async () => {
  assert.ok(stack);
  const { service, windowOpensAt, configPath } = stack;
  const done = await eventually(
    'a promoted canary',
    async () => {
      const s = await healingState(client, host);
      if (s.lastCanary && s.lastCanary.outcome !== 'promoted')
        throw new Error(`canary ${s.lastCanary.outcome}: ${s.lastCanary.reason}`);
      return s.lastCanary?.outcome === 'promoted' ? s : undefined;
    },
    3 * MINUTE + Math.max(0, windowOpensAt - Date.now()),
  );
  const canary = done.lastCanary!;
  const started = decisionsOf(done, 'canary_started')[0];
  const promoted = decisionsOf(done, 'candidate_promoted')[0];
  assert.ok(started && promoted, 'both decisions are recorded');
  assert.equal(started.params.candidateId, canary.candidateId);
  assert.equal(promoted.params.candidateId, canary.candidateId);
  assert.ok(started.at >= windowOpensAt, 'the canary did not start before the window opened');

  // The config on disk holds the candidate's value; the other keys are kept.
  const config = parseYaml(await readFile(configPath, 'utf8')) as Record<string, unknown>;
  const util = config['gpu-memory-utilization'];
  assert.equal(typeof util, 'number');
  assert.ok((util as number) < 0.98, `gpu-memory-utilization ${String(util)}`);
  assert.equal(canary.changes['gpu-memory-utilization'], util);
  const original: Record<string, unknown> = {
    model: MODEL,
    'served-model-name': SERVED,
    host: '127.0.0.1',
    port: Number(new URL(service.baseUrl).port),
    'max-model-len': 8192,
    'max-num-seqs': 256,
  };
  for (const [key, value] of Object.entries(original)) {
    assert.equal(config[key], key in canary.changes ? canary.changes[key] : value, `config key ${key}`);
  }

  // The service runs the new config and serves without an OOM.
  await waitHealthy(`${service.baseUrl}/health`, 10_000);
  const res = await complete(service.baseUrl);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { object?: string };
  assert.equal(body.object, 'text_completion');

  assert.ok(canary.measuredVramMb !== null && canary.measuredVramMb > 0, 'VRAM measured');
  assert.ok(canary.measuredVramMb < GPU_TOTAL_MB, `measured ${canary.measuredVramMb} MiB`);
  assert.ok(canary.downtimeMs > 0);

  const hs = await hostState(client, host);
  assert.ok(hs.budgetSpentMs > 0, `budget spent ${hs.budgetSpentMs}`);
  assert.ok(hs.cooldownUntil !== null && hs.cooldownLeftMs > 0, 'a cooldown started');

  // When the supervisor restarted the service (its journal line in the log), relative to the window.
  const log = await readFile(service.logPath, 'utf8');
  const restartLine = log
    .split('\n')
    .filter((l) => /supervisor\[\d+\]: Started service/.test(l))
    .map((l) => Date.parse(l.slice(0, l.indexOf(' '))))
    .filter((t) => t >= windowOpensAt)[0];

  console.log(`candidate ${canary.candidateId}: ${JSON.stringify(canary.changes)}`);
  console.log(`downtime (measured by the canary): ${canary.downtimeMs} ms`);
  console.log(`canary wall time (canary started → candidate promoted): ${promoted.at - started.at} ms`);
  console.log(`window open → canary started: ${started.at - windowOpensAt} ms`);
  if (restartLine !== undefined)
    console.log(`window open → service restarted (supervisor log): ${restartLine - windowOpensAt} ms`);
  console.log(`measured VRAM: ${canary.measuredVramMb} of ${GPU_TOTAL_MB} MiB`);
  console.log(
    `host budget: spent ${hs.budgetSpentMs} ms, left ${hs.budgetLeftMs} ms; cooldown until ${hs.cooldownUntil}`,
  );
});
