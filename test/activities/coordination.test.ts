// The coordination activities' calls to Temporal end when the activity is cancelled. The lease update
// waits on the coordinator, which runs on the same worker: a worker shutting down stops polling for its
// workflow tasks and cancels its activities, and an update that ignored that cancellation polled on,
// holding the shutdown (races.test.ts's teardown waited 1.5 to 5.5 minutes for it; CI timed out on it).
//
//   node --import tsx --test test/activities/coordination.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { type TestWorkflowEnvironment, MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCoordinationActivities } from '../../src/activities/coordination.js';
import { testPolicy, uniqueHost } from '../support/healing-harness.js';
import { createTimeSkippingEnv } from '../support/test-env.js';

let env: TestWorkflowEnvironment;
let auditDir: string;
before(async () => {
  env = await createTimeSkippingEnv();
  auditDir = await mkdtemp(join(tmpdir(), 'klr-coordination-'));
});
after(async () => {
  await env?.teardown();
  await rm(auditDir, { recursive: true, force: true });
});

test('a lease request waiting on a coordinator that no worker runs ends when the activity is cancelled', async () => {
  const activities = createCoordinationActivities({
    client: env.client,
    policy: testPolicy(),
    auditDir,
    restoreService: () => Promise.reject(new Error('not used')),
  });
  // No worker polls the host's task queue: the update is accepted by no one and would wait forever.
  const activity = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const asked = activity.run(activities.acquireCanaryLease, {
    host: uniqueHost('coord'),
    requestId: 'req-1',
    holderWorkflowId: 'heal-test',
    kind: 'vllm_oom',
    predictedDowntimeMs: 20_000,
  });
  const outcome = asked.then(
    () => 'answered',
    (err: Error) => err.name,
  );
  await delay(1000);
  assert.equal(await Promise.race([outcome, delay(0, 'waiting')]), 'waiting', 'nobody can answer it yet');

  activity.cancel('WORKER_SHUTDOWN');
  // Unref'd: once the answer came, this timer must not keep the file running for the rest of the 15 s.
  const ended = await Promise.race([
    outcome,
    delay(15_000, 'still waiting 15 s after the cancel', { ref: false }),
  ]);
  assert.equal(ended, 'WorkflowUpdateRPCTimeoutOrCancelledError');
});
