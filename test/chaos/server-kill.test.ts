// Fault injection: the Temporal dev server is SIGKILLed in the middle of a symptom stream, while an
// escalation waits on its durable timer for the maintenance window, and started again on the same
// SQLite file and port. A sender that retries until acknowledged (as the observer's delivery does)
// loses nothing and doubles nothing; the worker carries on; the timer still fires and the canary runs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { type DevServerHandle, pickFreePort, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import { recordSymptom } from '../../src/temporal/symptoms.js';
import { decisionsOf, eventually, healingState } from '../support/healing-harness.js';
import { type Scenario, startScenario } from '../support/heal-scenario.js';

const MINUTE = 60_000;
const SYMPTOMS = 60;
const host = `server-kill-${process.pid}`;

let dir: string;
let dbFile: string;
let port: number;
let server: DevServerHandle | undefined;
let connection: Connection | undefined;
let client: Client;
let scenario: Scenario | undefined;

const startServer = () =>
  startDevServer({ dbFile, port, ui: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-server-kill-'));
  dbFile = join(dir, 'temporal.sqlite');
  port = await pickFreePort();
  server = await startServer();
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  scenario = await startScenario({
    host,
    temporalAddress: server.address,
    serving: { 'gpu-memory-utilization': 0.98, 'max-model-len': 8192, 'max-num-seqs': 256 },
    // The stream, the kill and the restart must all happen before the window opens, also on a busy machine.
    windowLeadMs: 3 * MINUTE,
  });
});

after(async () => {
  await scenario?.stop();
  await connection?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('SIGKILL of the dev server mid-stream: every symptom counted once, the window timer still fires', async () => {
  assert.ok(scenario && server);
  const details = { family: 'torch_oom', allocMb: 2048, freeMb: 1631, totalMb: 81559, gpu: 0 };
  const acknowledged = new Map<string, number>(); // id → when it was acknowledged
  let attempts = 0;
  let failures = 0;

  /**
   * Deliver one symptom, retrying until the server acknowledges it (the observer's delivery contract).
   * The client itself retries an unavailable server for a while, so a send mostly just waits it out.
   */
  const deliver = async (id: string) => {
    for (;;) {
      attempts++;
      try {
        await recordSymptom(client, host, { kind: 'vllm_oom', id, details });
        acknowledged.set(id, Date.now());
        return;
      } catch {
        failures++;
        await delay(250);
      }
    }
  };

  let killedAt = 0;
  let restartedAt = 0;
  const sending = (async () => {
    for (let i = 1; i <= SYMPTOMS; i++) {
      await deliver(`${host}:${i}`);
      await delay(50);
    }
  })();
  const chaos = (async () => {
    await eventually(
      'a third of the symptoms delivered',
      async () => acknowledged.size >= SYMPTOMS / 3,
      MINUTE,
    );
    const dying = server;
    process.kill(dying.pid, 'SIGKILL');
    killedAt = Date.now();
    await dying.stop(); // reaps the killed process
    await delay(2_000);
    server = await startServer();
    restartedAt = Date.now();
  })();
  await Promise.all([sending, chaos]);
  console.log(
    `dev server down ${restartedAt - killedAt} ms; ${attempts} sends for ${SYMPTOMS} symptoms (${failures} failed while it was down)`,
  );
  assert.equal(acknowledged.size, SYMPTOMS);
  const acks = [...acknowledged.values()];
  assert.ok(
    acks.some((t) => t < killedAt) && acks.some((t) => t > restartedAt),
    'the stream straddles the outage (the kill happened mid-stream)',
  );

  const s = await eventually('state after the restart', () => healingState(client, host), MINUTE);
  assert.equal(s.count24h, SYMPTOMS, 'every acknowledged symptom is counted, none twice');
  assert.equal(s.totals.counted, SYMPTOMS);
  assert.equal(s.armed, true);

  // The escalation was waiting on a durable timer for the window when the server died: it still fires.
  assert.ok(Date.now() < scenario.windowOpensAt, 'the window opens after the restart');
  const done = await eventually(
    'the canary after the window opened',
    async () => {
      const st = await healingState(client, host);
      return st.lastCanary ? st : undefined;
    },
    3 * MINUTE + Math.max(0, scenario.windowOpensAt - Date.now()),
  );
  const started = decisionsOf(done, 'canary_started')[0];
  assert.ok(started && started.at >= scenario.windowOpensAt, 'the canary started in the window');
  assert.equal(done.lastCanary?.outcome, 'promoted', done.lastCanary?.reason);
  console.log(`window opened → canary started ${started.at - scenario.windowOpensAt} ms`);
});
