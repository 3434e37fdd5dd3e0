// Temporal's Java time-skipping test server, wrapped for TestWorkflowEnvironment, with this project's
// search attributes registered and the workflow bundle built once per test file (or once per run).
import { metricsSinks } from '../../src/metrics/metrics-sinks.js';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { readFile } from 'node:fs/promises';
import { DefaultLogger, Runtime, bundleWorkflowCode, Worker, type WorkflowBundle } from '@temporalio/worker';
import proto from '@temporalio/proto';
import { ensureTestServer } from '../../src/servers/test-server.js';
import { PAYLOAD_CONVERTER_PATH, WORKFLOWS_PATH } from '../../src/workers/host-worker.js';
import { createCoordinationActivities } from '../../src/activities/coordination.js';
import type { HostActivities } from '../../src/activities/types.js';
import { hostTaskQueue } from '../../src/domain/identifiers.js';
import type { HealingPolicy } from '../../src/domain/policy.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';

const { IndexedValueType } = proto.temporal.api.enums.v1;
const TYPE_MAP = {
  Keyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Bool: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
} as const;

/** Workers in tests log errors only (the Java test server draws a capability warning per worker). */
export function quietRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // Already installed in this process.
  }
}

export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const path = await ensureTestServer();
  const env = await startTimeSkipping(path);
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(
      Object.entries(SEARCH_ATTRIBUTE_TYPES).map(([k, t]) => [k, TYPE_MAP[t]]),
    ),
  });
  return env;
}

/**
 * The SDK gives the server 5 s to open its port, which a JVM starting on a busy machine (the test runner's
 * lanes side by side) now and then misses: "ephemeral server … did not start within 5s". Starting the
 * server is not what any test tests: such a start is tried again, three times at most.
 */
async function startTimeSkipping(path: string): Promise<TestWorkflowEnvironment> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await TestWorkflowEnvironment.createTimeSkipping({
        server: { executable: { type: 'existing-path', path } },
      });
    } catch (err) {
      if (attempt >= 3 || !/did not start within/.test(String(err))) throw err;
      console.warn(`# the test server did not open its port within the SDK's 5 s (try ${attempt}); again`);
    }
  }
}

let bundle: Promise<WorkflowBundle> | undefined;
/**
 * The workflow bundle: built once per test file, or read from $KLR_TEST_WORKFLOW_BUNDLE, which the test
 * runner (scripts/run-tests.ts) builds from the same sources once for all the files of a run.
 */
export function workflowBundle(): Promise<WorkflowBundle> {
  const prebuilt = process.env.KLR_TEST_WORKFLOW_BUNDLE;
  bundle ??= prebuilt ? readFile(prebuilt, 'utf8').then((code) => ({ code })) : buildWorkflowBundle();
  return bundle;
}

export function buildWorkflowBundle(): Promise<WorkflowBundle> {
  return bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    payloadConverterPath: PAYLOAD_CONVERTER_PATH,
    logger: quietBundlerLogger,
  });
}

const quietBundlerLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (m: string) => console.warn(m),
  error: (m: string) => console.error(m),
};

/** A worker for one GPU host on the test server, with the real coordination activities. */
export async function createHostWorker(
  env: TestWorkflowEnvironment,
  host: string,
  policy: HealingPolicy,
  gpu: Pick<HostActivities, 'measureVram' | 'predictCandidates' | 'runCanary' | 'restoreService'>,
  auditDir: string,
): Promise<Worker> {
  return Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue: hostTaskQueue(host),
    workflowBundle: await workflowBundle(),
    dataConverter: { payloadConverterPath: PAYLOAD_CONVERTER_PATH },
    sinks: metricsSinks(null),
    // Heartbeats reach the server within a second instead of 80 % of the 30 s heartbeat timeout: a
    // cancellation (which the server answers to a heartbeat) reaches a running canary in a second, not 24.
    maxHeartbeatThrottleInterval: '1 second',
    activities: {
      ...createCoordinationActivities({
        client: env.client,
        policy,
        auditDir,
        restoreService: gpu.restoreService,
      }),
      // createTimeSkippingEnv registered every attribute, KlrPhase included, but the Java test server
      // cannot list them (ListSearchAttributes is unimplemented there): say so, so that the tests and the
      // recorded histories run the path that sets KlrPhase.
      phaseAttributeRegistered: async () => true,
      // Likewise KlrService; the host's one service in these tests is the legacy "vllm" (KLR_SERVICE_NAME's default).
      serviceIdentity: async () => ({ legacyService: 'vllm', serviceAttribute: true }),
      ...gpu,
    },
  });
}
