// Several vLLM services on one simulated 8-GPU host, healed by one production worker on the real dev
// server (issue 17). The host first runs as a single-service deployment (the KLR_SERVICE_* shortcut, its
// workflow id without a service); then the worker is restarted with a services file of four services, the
// first continuing the legacy workflow (legacyIds: true) with its counts. Two services are armed; both
// canaries run in one window, one after the other (the host's one lease), charged to the host's one budget;
// the two services that are not healed are probed throughout and never fail, their configs and processes
// untouched.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { type DevServerHandle, pickFreePort, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import { recordSymptom } from '../../src/temporal/symptoms.js';
import { healingWorkflowId } from '../../src/domain/identifiers.js';
import { loadServices, routeService } from '../../src/service/services-file.js';
import type { HealingStateView } from '../../src/workflows/healing-messages.js';
import { decisionsOf, eventually, healingState, hostState } from '../support/healing-harness.js';
import {
  NVIDIA_SMI_STAND_IN,
  REPO_ROOT,
  type RealWorker,
  type SimService,
  startRealWorker,
  startSimService,
  supervisorCommand,
} from '../support/heal-stack.js';

const host = `multi-e2e-${process.pid}`;
const MINUTE = 60_000;
const KIND = 'vllm_oom';

interface ServicePlan {
  name: string;
  model: string;
  served: string;
  profile: string;
  gpus: number[];
  serving: Record<string, number>;
}

const LLAMA = join(REPO_ROOT, 'sim', 'models', 'llama-3.1-8b.json');
const QWEN = join(REPO_ROOT, 'sim', 'models', 'qwen2.5-7b.json');
const PLANS: ServicePlan[] = [
  // Too aggressive: its first request OOMs (docs/simulator.md). The host's single-service deployment.
  {
    name: 'llama',
    model: 'meta-llama/Llama-3.1-8B-Instruct',
    served: 'llama-3.1-8b',
    profile: LLAMA,
    gpus: [0],
    serving: { 'gpu-memory-utilization': 0.98, 'max-model-len': 8192, 'max-num-seqs': 256 },
  },
  // Healthy, but reported out of memory by another system: armed and canaried all the same.
  {
    name: 'qwen',
    model: 'Qwen/Qwen2.5-7B-Instruct',
    served: 'qwen2.5-7b',
    profile: QWEN,
    gpus: [2, 3],
    serving: { 'gpu-memory-utilization': 0.9, 'max-model-len': 8192, 'tensor-parallel-size': 2 },
  },
  {
    name: 'llama-b',
    model: 'meta-llama/Llama-3.1-8B-Instruct',
    served: 'llama-b',
    profile: LLAMA,
    gpus: [4],
    serving: { 'gpu-memory-utilization': 0.85, 'max-model-len': 8192 },
  },
  {
    name: 'qwen-b',
    model: 'Qwen/Qwen2.5-7B-Instruct',
    served: 'qwen-b',
    profile: QWEN,
    gpus: [5],
    serving: { 'gpu-memory-utilization': 0.85, 'max-model-len': 8192 },
  },
];

interface Running {
  plan: ServicePlan;
  configPath: string;
  original: string;
  service: SimService;
}

let server: DevServerHandle | undefined;
let connection: Connection | undefined;
let client: Client;
let dir: string;
let running: Running[] = [];
let worker: RealWorker | undefined;
let windowOpensAt = 0;
let workerEnv: Record<string, string> = {};

const utcHhmm = (ms: number): string => new Date(ms).toISOString().slice(11, 16);
const servicePid = async (r: Running) =>
  Number((await readFile(join(r.service.stateDir, 'service.pid'), 'utf8')).trim());

async function startService(plan: ServicePlan, gpuState: string): Promise<Running> {
  const port = await pickFreePort();
  const configPath = join(dir, `${plan.name}.yaml`);
  const original = [
    `model: ${plan.model}`,
    `served-model-name: ${plan.served}`,
    'host: 127.0.0.1',
    `port: ${port}`,
    ...Object.entries(plan.serving).map(([k, v]) => `${k}: ${String(v)}`),
    '',
  ].join('\n');
  await writeFile(configPath, original);
  const service = await startSimService({
    stateDir: join(dir, `svc-${plan.name}`),
    configPath,
    port,
    env: {
      SIM_STARTUP_MS: '1000',
      SIM_GPU_COUNT: '8',
      CUDA_VISIBLE_DEVICES: plan.gpus.join(','),
      KLR_SIM_GPU_STATE: gpuState,
      SIM_MODEL_PROFILE: plan.profile,
    },
  });
  return { plan, configPath, original, service };
}

function servicesYaml(): string {
  const lines = ['services:'];
  for (const [i, r] of running.entries()) {
    lines.push(
      `  - name: ${r.plan.name}`,
      `    config: ${r.configPath}`,
      `    restart: ${JSON.stringify(supervisorCommand('restart', r.service.stateDir))}`,
      `    url: ${r.service.baseUrl}`,
      `    log: ${r.service.logPath}`,
      `    gpus: [${r.plan.gpus.join(', ')}]`,
      `    modelProfile: ${r.plan.profile}`,
      ...(i === 0 ? ['    legacyIds: true'] : []),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** A completion request to one service; true when it answered 200. */
async function serves(r: Running): Promise<boolean> {
  try {
    const res = await fetch(`${r.service.baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: r.plan.served, prompt: 'Hello', max_tokens: 4 }),
      signal: AbortSignal.timeout(5_000),
    });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Probes the services every 250 ms until stopped: each failure's time, by service. */
function probe(targets: Running[]): { stop(): Promise<Map<string, number[]>>; count(): number } {
  const failures = new Map<string, number[]>(targets.map((t) => [t.plan.name, []]));
  let stopped = false;
  let rounds = 0;
  const loop = (async () => {
    while (!stopped) {
      await Promise.all(
        targets.map(async (t) => {
          if (!(await serves(t))) failures.get(t.plan.name)!.push(Date.now());
        }),
      );
      rounds++;
      await delay(250);
    }
  })();
  return {
    count: () => rounds,
    async stop() {
      stopped = true;
      await loop;
      return failures;
    },
  };
}

const symptom = (id: string) => ({
  kind: KIND,
  id,
  source: 'multi-service-test',
  details: { family: 'torch_oom', allocMb: 2048, freeMb: 1200, deficitMb: 848, totalMb: 81559, gpu: 0 },
});

before(async () => {
  server = await startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  dir = await mkdtemp(join(tmpdir(), `klr-${host}-`));
  const gpuState = join(dir, 'gpu-state.json');
  running = await Promise.all(PLANS.map((p) => startService(p, gpuState)));
  // The window opens on the first minute boundary at least 75 s from now: the single-service phase and the
  // worker's restart come first.
  windowOpensAt = Math.ceil((Date.now() + 75_000) / MINUTE) * MINUTE;
  const llama = running[0]!;
  workerEnv = {
    TEMPORAL_ADDRESS: server.address,
    KLR_HOST: host,
    KLR_DATA_DIR: join(dir, 'data'),
    KLR_GPU_MAINTENANCE_TZ: 'UTC',
    KLR_GPU_MAINTENANCE_WINDOW: `${utcHhmm(windowOpensAt)}-${utcHhmm(windowOpensAt + 60 * MINUTE)}`,
    KLR_ESCALATION_FLAG_TTL: '0',
    KLR_CANARY_SOAK_SECONDS: '2',
    KLR_CANARY_COOLDOWN_HOURS: '0',
    KLR_PREDICT_INTERVAL: '0',
    KLR_NVIDIA_SMI: NVIDIA_SMI_STAND_IN,
    KLR_SIM_GPU_STATE: gpuState,
  };
  // Today's single-service deployment: the shortcut, its service named llama.
  worker = await startRealWorker({
    ...workerEnv,
    KLR_SERVICE_NAME: 'llama',
    KLR_SERVICE_CONFIG: llama.configPath,
    KLR_SERVICE_RESTART_CMD: JSON.stringify(supervisorCommand('restart', llama.service.stateDir)),
    KLR_SERVICE_URL: llama.service.baseUrl,
    KLR_SERVICE_LOG: llama.service.logPath,
    KLR_MODEL_PROFILE: llama.plan.profile,
  });
});

after(async () => {
  await worker?.stop();
  await Promise.all(running.map((r) => r.service.stop()));
  await connection?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a single-service history is continued by the services file: same workflow, same counts, named', async () => {
  for (const i of [1, 2]) await recordSymptom(client, host, symptom(`${host}:llama:${i}`));
  const before = await eventually('the legacy workflow named by its worker', async () => {
    const s = await healingState(client, host);
    return s.service === 'llama' ? s : undefined;
  });
  assert.equal(before.workflowId, healingWorkflowId(host, KIND));
  assert.equal(before.count24h, 2);
  await worker!.stop();

  const file = join(dir, 'services.yaml');
  await writeFile(file, servicesYaml());
  worker = await startRealWorker({ ...workerEnv, KLR_SERVICES_FILE: file });
  const services = loadServices({ KLR_SERVICES_FILE: file, KLR_DATA_DIR: join(dir, 'data') });
  const route = routeService(services, 'llama');
  assert.deepEqual(route, { ok: true, service: null }, 'llama continues the legacy ids');
  const third = await recordSymptom(client, host, symptom(`${host}:llama:3`), null);
  assert.equal(third.count24h, 3, 'the counts of the single-service release are kept');
  assert.equal(third.armed, true);
  for (const i of [1, 2, 3]) await recordSymptom(client, host, symptom(`${host}:qwen:${i}`), 'qwen');
  const qwen = await healingState(client, host, KIND, 'qwen');
  assert.equal(qwen.workflowId, healingWorkflowId(host, KIND, 'qwen'));
  assert.equal(qwen.service, 'qwen');
  assert.equal(qwen.armed, true);
  const llama = await healingState(client, host);
  assert.equal(llama.runs, before.runs, 'the same run chain');
  assert.equal(llama.firstRunId, before.firstRunId);

  // KlrService finds each service's workflow, the legacy one included.
  for (const [name, id] of [
    ['llama', healingWorkflowId(host, KIND)],
    ['qwen', healingWorkflowId(host, KIND, 'qwen')],
  ] as const) {
    await eventually(`KlrService = "${name}"`, async () => {
      const ids: string[] = [];
      for await (const w of client.workflow.list({ query: `KlrHost = "${host}" AND KlrService = "${name}"` }))
        ids.push(w.workflowId);
      return ids.length === 1 && ids[0] === id ? ids : undefined;
    });
  }
});

test('both canaries run in the window one after the other, on the host budget; the neighbours never notice', async () => {
  const [llama, qwen, ...bystanders] = running as [Running, Running, ...Running[]];
  const pidsBefore = await Promise.all(bystanders.map(servicePid));
  const watch = probe([qwen, ...bystanders]);
  let done: HealingStateView[];
  let failures: Map<string, number[]>;
  try {
    done = await eventually(
      'both canaries ended',
      async () => {
        const states = [await healingState(client, host), await healingState(client, host, KIND, 'qwen')];
        return states.every((s) => s.lastCanary !== null) ? states : undefined;
      },
      4 * MINUTE + Math.max(0, windowOpensAt - Date.now()),
    );
  } finally {
    failures = await watch.stop();
  }
  const [a, b] = done as [HealingStateView, HealingStateView];
  assert.equal(a.lastCanary?.outcome, 'promoted', JSON.stringify(a.lastCanary));
  assert.ok(watch.count() > 20, `probed ${watch.count()} times`);

  // One canary at a time: the two intervals do not overlap.
  const interval = (s: HealingStateView) => ({
    from: decisionsOf(s, 'canary_started')[0]!.at,
    to: s.lastCanary!.at,
  });
  const [ia, ib] = [interval(a), interval(b)];
  assert.ok(ia.to <= ib.from || ib.to <= ia.from, `canaries overlap: ${JSON.stringify({ ia, ib })}`);
  assert.ok(Math.min(ia.from, ib.from) >= windowOpensAt, 'no canary before the window');

  // The qwen service may fail only while its own canary restarts it; the others never.
  const qwenOutside = (failures.get('qwen') ?? []).filter((t) => t < ib.from || t > ib.to + 1_000);
  assert.deepEqual(qwenOutside, [], 'qwen failed outside its own canary');
  for (const r of bystanders)
    assert.deepEqual(failures.get(r.plan.name), [], `${r.plan.name} failed a request`);
  assert.deepEqual(
    await Promise.all(bystanders.map(servicePid)),
    pidsBefore,
    'the bystanders were not restarted',
  );
  for (const r of bystanders) assert.equal(await readFile(r.configPath, 'utf8'), r.original);
  assert.notEqual(await readFile(llama.configPath, 'utf8'), llama.original, "llama's candidate is on disk");

  // One budget for the host: both canaries' downtime charged to it, and each release names its service.
  const hs = await hostState(client, host);
  const downtime = a.lastCanary.downtimeMs + b.lastCanary!.downtimeMs;
  assert.equal(hs.budgetSpentMs, downtime, `spent ${hs.budgetSpentMs} ms for canaries of ${downtime} ms`);
  // The coordinator appends each audit record right after its release (an activity of its own).
  const audit = await eventually('both releases in the audit log', async () => {
    const records = (await readFile(join(dir, 'data', 'audit', `budget-${host}.jsonl`), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: { service?: string } });
    return records.length >= 2 ? records : undefined;
  });
  assert.deepEqual(audit.map((r) => r.event.service).sort(), ['llama', 'qwen']);
  console.log(
    `llama ${a.lastCanary.outcome} ${JSON.stringify(a.lastCanary.changes)} (${a.lastCanary.downtimeMs} ms), ` +
      `qwen ${b.lastCanary!.outcome} ${JSON.stringify(b.lastCanary!.changes)} (${b.lastCanary!.downtimeMs} ms); ` +
      `${watch.count()} probe rounds of ${1 + bystanders.length} services`,
  );
});
