// A real Temporal dev server (SQLite file, fixed port so it can come back where clients expect it) and a
// real host-worker process for the observer's tests, with helpers to read a HealingWorkflow's state.
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { type DevServerHandle, startDevServer } from '../../src/servers/dev-server.js';
import { healingWorkflowId } from '../../src/domain/identifiers.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import { type HealingStateView, stateQuery } from '../../src/workflows/healing-messages.js';
import { REPO_ROOT } from './heal-stack.js';
import { eventually } from './healing-harness.js';
import { type ReadyProcess, startReadyProcess } from './ready-process.js';

/** The dev server on `dir`/temporal.sqlite; `port` pins the address so a restart comes back on it. */
export function startObserverServer(dir: string, port?: number): Promise<DevServerHandle> {
  return startDevServer({
    dbFile: join(dir, 'temporal.sqlite'),
    port,
    ui: false,
    searchAttributes: SEARCH_ATTRIBUTE_TYPES,
  });
}

export type WorkerProcess = ReadyProcess;

/**
 * The production host worker with a scripted GPU side (test/support/scripted-worker.ts). The threshold
 * is high so the symptoms these tests send only count; nothing escalates.
 */
export function startWorkerProcess(opts: {
  address: string;
  host: string;
  dataDir: string;
}): Promise<WorkerProcess> {
  return startReadyProcess(['--import', 'tsx', join(REPO_ROOT, 'test', 'support', 'scripted-worker.ts')], {
    cwd: REPO_ROOT,
    env: {
      TEMPORAL_ADDRESS: opts.address,
      KLR_HOST: opts.host,
      KLR_DATA_DIR: opts.dataDir,
      KLR_GPU_MAINTENANCE_TZ: 'UTC',
      KLR_SYMPTOM_THRESHOLD_24H: '1000',
      KLR_PREDICT_INTERVAL: '0',
    },
    ready: 'worker ready',
    name: 'worker',
  });
}

/**
 * The state query of HealingWorkflow(host, service, kind) — service null: the legacy ids — over a connection
 * opened and closed for it.
 */
export async function queryState(
  address: string,
  host: string,
  kind = 'vllm_oom',
  service: string | null = null,
): Promise<HealingStateView> {
  const connection = await Connection.connect({ address, connectTimeout: '5s' });
  try {
    const client = new Client({ connection });
    return await client.workflow.getHandle(healingWorkflowId(host, kind, service)).query(stateQuery);
  } finally {
    await connection.close();
  }
}

/** `eventually` from the healing harness, with the longer default these process-level tests need. */
export function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  return eventually(what, check, timeoutMs);
}
