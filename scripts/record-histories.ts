// Records the event histories of the main scenarios of both workflows, run by the current workflow code on
// Temporal's time-skipping server with scripted GPU activities, into test/replay/histories/<release>/.
// `npm test` replays every committed history against the current code (test/replay/replay.test.ts): a
// change that would break a workflow already running on a host fails CI.
//
// Re-record only on purpose (docs/upgrading.md): `npm run record:histories -- <release>` writes a NEW
// folder for the release it is run on; the folders of earlier releases stay, since hosts may still run
// workflows that earlier releases started.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, WithStartWorkflowOperation } from '@temporalio/client';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { healingWorkflowId, hostCoordinatorWorkflowId, hostTaskQueue } from '../src/domain/identifiers.js';
import type { HealingPolicy } from '../src/domain/policy.js';
import {
  clearEscalationUpdate,
  forceEscalationUpdate,
  symptomSignal,
} from '../src/workflows/healing-messages.js';
import {
  acknowledgeRestoreFailureUpdate,
  acquireOperatorLeaseUpdate,
  pauseHostUpdate,
  leaseUpdate,
  releaseLeaseSignal,
  resumeHostUpdate,
} from '../src/workflows/host-coordinator-messages.js';
import { HostCoordinatorWorkflow } from '../src/workflows/host-coordinator-workflow.js';
import { recordSymptom } from '../src/temporal/symptoms.js';
import { createHostWorker, createTimeSkippingEnv } from '../test/support/test-env.js';
import { type ScriptedGpu, scriptedGpu } from '../test/support/scripted-gpu.js';
import {
  decisionsOf,
  eventually,
  healingState,
  hostState,
  skipToUtc,
  symptom,
  testPolicy,
} from '../test/support/healing-harness.js';

const release = process.argv[2];
if (!release || !/^[0-9A-Za-z._-]+$/.test(release)) {
  console.error(
    'usage: npm run record:histories -- <release>   (e.g. 0.1.0: the folder name under test/replay/histories)',
  );
  process.exit(2);
}
const outDir = join('test', 'replay', 'histories', release);
const MINUTE = 60_000;
const operator = { by: 'recorder', reason: 'recorded scenario' };

interface Scenario {
  name: string;
  /** The healing workflow's kind (default vllm_oom). */
  kind?: string;
  /** The service its workflow id names (0.5); absent: the legacy id. */
  service?: string;
  policy?: Partial<HealingPolicy>;
  gpu?: Parameters<typeof scriptedGpu>[0];
  /** Drives the host's workflows; returns when the scenario's end state is reached. */
  drive(env: TestWorkflowEnvironment, host: string, gpu: ScriptedGpu): Promise<void>;
}

/** At 01:00 UTC, two hours before the window opens: the default TTL (4 h) keeps the flag armed. */
const threeSymptoms = async (env: TestWorkflowEnvironment, host: string) => {
  const client = env.client;
  await skipToUtc(env, 1);
  for (let i = 0; i < 3; i++) await symptom(client, host, 'vllm_oom', { id: `rec-${i}` });
};

const lastCanaryIs = (client: Client, host: string, outcome: string) =>
  eventually(
    `last canary ${outcome}`,
    async () => (await healingState(client, host)).lastCanary?.outcome === outcome,
    60_000,
  );

const SCENARIOS: Scenario[] = [
  {
    name: 'promotion',
    async drive(env, host) {
      await threeSymptoms(env, host);
      await skipToUtc(env, 3, 1);
      await lastCanaryIs(env.client, host, 'promoted');
    },
  },
  {
    name: 'restore',
    gpu: { canaryScripts: ['fail'] },
    async drive(env, host) {
      await threeSymptoms(env, host);
      await skipToUtc(env, 3, 1);
      await lastCanaryIs(env.client, host, 'restored');
    },
  },
  {
    name: 'restore-failure-latch',
    gpu: { canaryScripts: ['throw'], restoreScripts: ['fail'] },
    async drive(env, host) {
      await threeSymptoms(env, host);
      await skipToUtc(env, 3, 1);
      await lastCanaryIs(env.client, host, 'restore_failed');
      const coordinator = env.client.workflow.getHandle(hostCoordinatorWorkflowId(host));
      await coordinator.executeUpdate(acknowledgeRestoreFailureUpdate, { args: [operator] });
      await eventually(
        'latch cleared',
        async () => (await hostState(env.client, host)).restoreFailure === null,
      );
    },
  },
  {
    name: 'operator-actions',
    async drive(env, host) {
      const client = env.client;
      await skipToUtc(env, 1);
      await symptom(client, host, 'vllm_oom', { id: 'op-1' });
      await symptom(client, host, 'vllm_oom', { id: 'op-1' }); // duplicate
      const handle = client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
      await handle.signal(symptomSignal, { kind: 'vllm_oom', details: { allocMb: -1 } }); // rejected
      await handle.signal(symptomSignal, { kind: 'vllm_oom', eventTime: '2001-01-01T00:00:00Z' }); // stale
      await handle.executeUpdate(forceEscalationUpdate, { args: [operator] });
      await handle.executeUpdate(clearEscalationUpdate, { args: [operator] });
      await handle.executeUpdate(forceEscalationUpdate, { args: [operator] });
      const coordinator = client.workflow.getHandle(hostCoordinatorWorkflowId(host));
      await env.sleep(30 * MINUTE);
      await client.workflow.signalWithStart(HostCoordinatorWorkflow, {
        workflowId: hostCoordinatorWorkflowId(host),
        taskQueue: hostTaskQueue(host),
        args: [{ host }],
        signal: releaseLeaseSignal,
        signalArgs: [{ leaseId: 'no-such-lease', downtimeMs: 0, outcome: 'not_started' }],
      });
      await coordinator.executeUpdate(pauseHostUpdate, { args: [operator] });
      await skipToUtc(env, 3, 1);
      await eventually(
        'canary refused while paused',
        async () => decisionsOf(await healingState(client, host), 'canary_refused_by_host').length > 0,
      );
      await coordinator.executeUpdate(resumeHostUpdate, { args: [operator] });
      await handle.executeUpdate(forceEscalationUpdate, { args: [operator] }); // wakes it: the window is open
      await lastCanaryIs(client, host, 'promoted');
    },
  },
  {
    name: 'daytime-lapse',
    async drive(env, host) {
      await skipToUtc(env, 10, 0);
      for (let i = 0; i < 3; i++) {
        await symptom(env.client, host, 'vllm_oom', { id: `day-${i}` });
        await env.sleep(2 * 60 * MINUTE);
      }
      await skipToUtc(env, 8, 0);
      await eventually('escalation over', async () => !(await healingState(env.client, host)).armed);
    },
  },
  {
    name: 'continue-as-new',
    policy: { historyEventsLimit: 200 },
    async drive(env, host) {
      const client = env.client;
      await skipToUtc(env, 1);
      await symptom(client, host, 'vllm_oom', { id: 'can-0' });
      const handle = client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
      for (let i = 1; i <= 120; i++) {
        await handle.signal(symptomSignal, { kind: 'vllm_oom', id: `can-${i}`, details: { deficitMb: i } });
      }
      await eventually('continued as new', async () => (await healingState(client, host)).runs >= 2, 60_000);
      await skipToUtc(env, 3, 1);
      await lastCanaryIs(client, host, 'promoted');
      for (let i = 0; i < 60; i++) {
        await client.workflow.signalWithStart(HostCoordinatorWorkflow, {
          workflowId: hostCoordinatorWorkflowId(host),
          taskQueue: hostTaskQueue(host),
          args: [{ host }],
          signal: releaseLeaseSignal,
          signalArgs: [{ leaseId: `stale-${i}`, downtimeMs: 0, outcome: 'not_started' }],
        });
      }
      await eventually(
        'coordinator continued as new',
        async () => (await hostState(client, host)).runs >= 2,
        60_000,
      );
    },
  },
  {
    name: 'lease-expiry',
    async drive(env, host) {
      // A holder that never runs its canary: the lease is granted (the update's result) to a workflow that
      // does not exist, so the coordinator takes it back after the TTL.
      await skipToUtc(env, 3, 1);
      const answer = await env.client.workflow.executeUpdateWithStart(leaseUpdate, {
        args: [
          {
            requestId: 'lost-holder',
            holderWorkflowId: healingWorkflowId(host, 'vllm_oom'),
            kind: 'vllm_oom',
            predictedDowntimeMs: 20_000,
          },
        ],
        updateId: 'lost-holder',
        startWorkflowOperation: new WithStartWorkflowOperation(HostCoordinatorWorkflow, {
          workflowId: hostCoordinatorWorkflowId(host),
          taskQueue: hostTaskQueue(host),
          args: [{ host }],
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      });
      if (!answer.granted) throw new Error(`lease refused: ${answer.reason}`);
      await env.sleep(40 * MINUTE);
      await eventually(
        'lease expired',
        async () => decisionsOf(await hostState(env.client, host), 'lease_expired').length > 0,
      );
    },
  },
  {
    name: 'alert-kind',
    kind: 'gpu_xid',
    async drive(env, host) {
      await skipToUtc(env, 1);
      for (let i = 0; i < 3; i++) {
        await symptom(env.client, host, 'gpu_xid', {
          id: `xid-${i}`,
          details: {
            family: 'gpu_xid',
            text: 'NVRM: Xid (PCI:0000:3b:00): 79, pid=1, GPU has fallen off the bus.',
          },
        });
      }
      await skipToUtc(env, 8, 0);
      await eventually('lapsed', async () => !(await healingState(env.client, host, 'gpu_xid')).armed);
    },
  },
  {
    name: 'missed-window',
    async drive(env, host) {
      await env.client.workflow.executeUpdateWithStart(pauseHostUpdate, {
        args: [operator],
        startWorkflowOperation: new WithStartWorkflowOperation(HostCoordinatorWorkflow, {
          workflowId: hostCoordinatorWorkflowId(host),
          taskQueue: hostTaskQueue(host),
          args: [{ host }],
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      });
      await skipToUtc(env, 10, 0);
      for (let i = 0; i < 3; i++) await symptom(env.client, host, 'vllm_oom', { id: `miss-${i}` });
      await skipToUtc(env, 7, 1);
      await eventually(
        'missed',
        async () => ((await healingState(env.client, host)).counters.missedWindows ?? 0) > 0,
      );
    },
  },
  {
    name: 'rollback-lease',
    gpu: { canaryScripts: ['gated'] },
    async drive(env, host, gpu) {
      await threeSymptoms(env, host);
      await skipToUtc(env, 3, 1);
      await eventually(
        'canary running',
        async () => (await healingState(env.client, host)).phase === 'canary_running',
      );
      const ask = (requestId: string) =>
        env.client.workflow.executeUpdateWithStart(acquireOperatorLeaseUpdate, {
          args: [
            {
              requestId,
              purpose: 'rollback',
              by: 'recorder',
              reason: 'recorded',
              predictedDowntimeMs: 20_000,
            },
          ],
          startWorkflowOperation: new WithStartWorkflowOperation(HostCoordinatorWorkflow, {
            workflowId: hostCoordinatorWorkflowId(host),
            taskQueue: hostTaskQueue(host),
            args: [{ host }],
            workflowIdConflictPolicy: 'USE_EXISTING',
          }),
        });
      await ask('refused-while-canary');
      gpu.openGate();
      await lastCanaryIs(env.client, host, 'promoted');
      await eventually('lease free', async () => (await hostState(env.client, host)).lease === null);
      const granted = await ask('granted');
      await env.client.workflow.getHandle(hostCoordinatorWorkflowId(host)).signal(releaseLeaseSignal, {
        leaseId: granted.leaseId ?? '',
        downtimeMs: 5_000,
        outcome: 'rolled_back',
      });
      await eventually('released', async () => (await hostState(env.client, host)).lease === null);
    },
  },
  {
    name: 'abandoned-canary',
    gpu: { canaryScripts: ['gated'] },
    async drive(env, host, gpu) {
      await threeSymptoms(env, host);
      await skipToUtc(env, 3, 1);
      await eventually(
        'canary running',
        async () => (await healingState(env.client, host)).phase === 'canary_running',
      );
      await env.client.workflow
        .getHandle(healingWorkflowId(host, 'vllm_oom'))
        .terminate('recorded: holder gone');
      // The orphaned canary activity runs on to its end (its result has nobody to go to); a canary left
      // waiting for its gate holds the test server's time still until the heartbeat timeout cancels it.
      gpu.openGate();
      await eventually('canary stopped', async () => gpu.journal.some((e) => e.action === 'canary:end'));
      await env.sleep(31 * MINUTE);
      await eventually(
        'recovered',
        async () => decisionsOf(await hostState(env.client, host), 'lease_expired').length > 0,
      );
    },
  },
  {
    // 0.5: one service of several, its workflow id naming it; the lease names the service.
    name: 'service-promotion',
    service: 'qwen',
    async drive(env, host) {
      await skipToUtc(env, 1);
      for (let i = 0; i < 3; i++)
        await recordSymptom(env.client, host, { kind: 'vllm_oom', id: `rec-q-${i}` }, 'qwen');
      await skipToUtc(env, 3, 1);
      await eventually(
        'last canary promoted',
        async () =>
          (await healingState(env.client, host, 'vllm_oom', 'qwen')).lastCanary?.outcome === 'promoted',
        60_000,
      );
    },
  },
  {
    name: 'hostile-input',
    async drive(env, host) {
      await symptom(env.client, host, 'vllm_oom', { id: 'h-1' });
      const bytes = (text: string) => new TextEncoder().encode(text);
      for (const [workflowId, signalName] of [
        [healingWorkflowId(host, 'vllm_oom'), 'symptom'],
        [healingWorkflowId(host, 'vllm_oom'), 'leaseDecision'],
      ] as const) {
        await env.client.workflowService.signalWorkflowExecution({
          namespace: env.client.options.namespace,
          workflowExecution: { workflowId },
          signalName,
          input: { payloads: [{ metadata: { encoding: bytes('json/plain') }, data: bytes('{not json') }] },
          identity: 'recorder',
        });
      }
      const handle = env.client.workflow.getHandle(healingWorkflowId(host, 'vllm_oom'));
      await handle.signal(symptomSignal, { kind: 'vllm_oom', eventTime: 9_000_000_000_000_000 });
      await handle.signal('leaseDecision', { granted: 'yes' });
      await eventually('rejected', async () => (await healingState(env.client, host)).totals.rejected >= 2);
    },
  },
];

/** Every run of a workflow chain, oldest first (continue-as-new links each run to the one before). */
async function chainHistories(client: Client, workflowId: string) {
  const out: { workflowId: string; runId: string; json: string }[] = [];
  let runId: string | undefined = (await client.workflow.getHandle(workflowId).describe()).runId;
  while (runId) {
    const history: History = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    out.unshift({ workflowId, runId, json: historyToJSON(history) });
    const previous: string | null | undefined =
      history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    runId = previous || undefined;
  }
  return out;
}

await mkdir(outDir, { recursive: true });
type IndexEntry = { file: string; scenario: string; workflowId: string; runId: string };

/** Records one scenario in this process: its histories into outDir, their index entries into `indexFile`. */
async function recordScenario(scenario: Scenario, indexFile: string): Promise<void> {
  const auditDir = await mkdtemp(join(tmpdir(), 'klr-record-'));
  const env = await createTimeSkippingEnv();
  const entries: IndexEntry[] = [];
  try {
    const host = `rec-${scenario.name}`;
    const gpu = scriptedGpu(scenario.gpu);
    const worker = await createHostWorker(env, host, testPolicy(scenario.policy), gpu.activities, auditDir);
    await worker.runUntil(async () => {
      await scenario.drive(env, host, gpu);
      for (const [role, id] of [
        ['healing', healingWorkflowId(host, scenario.kind ?? 'vllm_oom', scenario.service ?? null)],
        ['coordinator', hostCoordinatorWorkflowId(host)],
      ] as const) {
        let runs;
        try {
          runs = await chainHistories(env.client, id);
        } catch (err) {
          if ((err as Error).name === 'WorkflowNotFoundError') continue; // the scenario never started it
          throw err;
        }
        for (const [i, run] of runs.entries()) {
          const file = `${scenario.name}.${role}${runs.length > 1 ? `.run${i + 1}` : ''}.json`;
          entries.push({ file, scenario: scenario.name, workflowId: run.workflowId, runId: run.runId });
          await writeFile(join(outDir, file), run.json + '\n');
        }
      }
    });
  } finally {
    await env.teardown();
    await rm(auditDir, { recursive: true, force: true });
  }
  await writeFile(indexFile, JSON.stringify(entries));
}

/**
 * Each scenario in a process of its own, on a fresh test server: the Java test server sometimes stops
 * skipping time with nothing pending (docs/testing.md, "Hangs"), and a scenario that has not ended in two
 * minutes is killed, with its server, and recorded again; after two tries it is left out and named (null).
 */
async function recordInChild(scenario: Scenario): Promise<IndexEntry[] | null> {
  const indexFile = join(tmpdir(), `klr-record-${process.pid}-${scenario.name}.json`);
  for (let attempt = 1; ; attempt++) {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, release!], {
      env: { ...process.env, KLR_RECORD_ONLY: scenario.name, KLR_RECORD_INDEX: indexFile },
      stdio: ['ignore', 'inherit', 'inherit'],
      detached: true,
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 2 * MINUTE);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    if (code === 0) {
      const entries = JSON.parse(await readFile(indexFile, 'utf8')) as IndexEntry[];
      await rm(indexFile, { force: true });
      return entries;
    }
    if (attempt >= 2) return null;
    console.log(
      `${scenario.name}: ${code === null ? 'stalled, killed' : `exit ${code}`}; recording it again (try ${attempt + 1} of 2)`,
    );
  }
}

// KLR_RECORD_ONLY=<name> (set by the loop below for each child): that one scenario in this process.
const only = process.env.KLR_RECORD_ONLY;
if (only) {
  const scenario = SCENARIOS.find((s) => s.name === only);
  if (!scenario) throw new Error(`no scenario ${only}`);
  await recordScenario(scenario, process.env.KLR_RECORD_INDEX ?? join(tmpdir(), `klr-record-${only}.json`));
  process.exit(0);
}
const index: IndexEntry[] = [];
const notRecorded: string[] = [];
for (const scenario of SCENARIOS) {
  const entries = await recordInChild(scenario);
  if (entries === null) notRecorded.push(scenario.name);
  else index.push(...entries);
  console.log(entries === null ? `NOT recorded: ${scenario.name}` : `recorded ${scenario.name}`);
}
await writeFile(
  join(outDir, 'index.json'),
  JSON.stringify({ release, recordedAt: new Date().toISOString(), histories: index, notRecorded }, null, 2) +
    '\n',
);
console.log(`${index.length} histories in ${outDir}`);
