// Temporal's Java time-skipping test server, wrapped for TestWorkflowEnvironment, with this project's
// search attributes registered and the workflow bundle built once per test file.
import { metricsSinks } from '../../src/metrics/metrics-sinks.js';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  DefaultLogger,
  Runtime,
  bundleWorkflowCode,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
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
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path } },
  });
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(
      Object.entries(SEARCH_ATTRIBUTE_TYPES).map(([k, t]) => [k, TYPE_MAP[t]]),
    ),
  });
  return env;
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    payloadConverterPath: PAYLOAD_CONVERTER_PATH,
    logger: quietBundlerLogger,
  });
  return bundle;
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
      ...gpu,
    },
  });
}
