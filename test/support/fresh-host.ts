// One test, one fresh time-skipping server with a worker for one fresh host: workflows a finished test
// leaves behind (and their workers' shutdown) must not stall the next test's time skipping. Registers the
// file's before/after hooks for the audit directory; `env` is the server of the test that runs now.
import { after, before } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { HealingPolicy } from '../../src/domain/policy.js';
import type { ScriptedGpu } from './scripted-gpu.js';
import { uniqueHost } from './healing-harness.js';
import { createHostWorker, createTimeSkippingEnv } from './test-env.js';

export interface FreshHosts {
  /** The server of the running test. */
  readonly env: TestWorkflowEnvironment;
  /** Where the hosts' workers write their audit log (`budget-<host>.jsonl`). */
  readonly auditDir: string;
  /** Run `body` on a fresh server with a worker for a fresh host (`<prefix>-…`) under `policy`. */
  withHost(
    policy: HealingPolicy,
    gpu: ScriptedGpu,
    body: (host: string, worker: Worker) => Promise<void>,
  ): Promise<void>;
}

export function freshHosts(prefix: string): FreshHosts {
  let env: TestWorkflowEnvironment | undefined;
  let auditDir = '';
  // The next test's server starts while this test runs (a second or so of JVM start-up each); it sees
  // nothing of this one.
  let next: Promise<TestWorkflowEnvironment> | undefined;
  const startNext = () => {
    next = createTimeSkippingEnv();
    next.catch(() => undefined); // reported by the test that takes it
  };
  before(async () => {
    auditDir = await mkdtemp(join(tmpdir(), `klr-${prefix}-`));
  });
  after(async () => {
    const unused = await next?.catch(() => undefined);
    await unused?.teardown();
    await rm(auditDir, { recursive: true, force: true });
  });
  return {
    get env() {
      if (!env) throw new Error('no server: call env inside withHost');
      return env;
    },
    get auditDir() {
      return auditDir;
    },
    async withHost(policy, gpu, body) {
      if (!next) startNext();
      const starting = next!;
      startNext();
      env = await starting;
      try {
        const host = uniqueHost(prefix);
        const worker = await createHostWorker(env, host, policy, gpu.activities, auditDir);
        await worker.runUntil(body(host, worker));
      } finally {
        await env.teardown();
      }
    },
  };
}
