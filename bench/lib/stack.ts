// What most benchmarks stand on: a Temporal dev server (in memory, or on a SQLite file) with the
// project's search attributes, a client, and the bench worker as its own process (so that its RSS is
// its own). Everything started here is stopped here, by its own pid.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { type ReadyProcess, startReadyProcess } from '../../test/support/ready-process.js';
import { type DevServerHandle, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

export type BenchWorker = ReadyProcess;

/** Starts bench/lib/bench-worker.ts for `hosts`; resolves once every host's worker polls. */
export function startBenchWorker(
  address: string,
  hosts: string[],
  env: Record<string, string>,
): Promise<BenchWorker> {
  return startReadyProcess(['--import', 'tsx', join(REPO_ROOT, 'bench', 'lib', 'bench-worker.ts')], {
    cwd: REPO_ROOT,
    env: { TEMPORAL_ADDRESS: address, KLR_BENCH_HOSTS: hosts.join(','), KLR_LOG_LEVEL: 'warn', ...env },
    ready: 'bench worker started',
    name: 'bench worker',
    stopGraceMs: 45_000,
  });
}

export interface BenchStack {
  server: DevServerHandle;
  client: Client;
  dataDir: string;
  stop(): Promise<void>;
}

/** A dev server on a SQLite file in a temporary directory (as in production), and a client. */
export async function startBenchStack(log: (line: string) => void): Promise<BenchStack> {
  const dataDir = await mkdtemp(join(tmpdir(), 'klr-bench-'));
  const t0 = Date.now();
  const server = await startDevServer({
    ui: false,
    dbFile: join(dataDir, 'temporal.sqlite'),
    searchAttributes: SEARCH_ATTRIBUTE_TYPES,
  });
  log(`dev server ${server.address} up in ${Date.now() - t0} ms (SQLite file)`);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  return {
    server,
    client,
    dataDir,
    async stop() {
      await connection.close();
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Settings every bench worker gets: a window far from now (no canary during a bench), quiet logs. */
export function benchWorkerEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    KLR_DATA_DIR: join(dataDir, 'worker'),
    KLR_GPU_MAINTENANCE_TZ: 'UTC',
    KLR_GPU_MAINTENANCE_WINDOW: farWindow(),
    ...extra,
  };
}

/** A one-hour window opening 12 h from now, so no bench crosses into it. */
function farWindow(): string {
  const opens = new Date(Date.now() + 12 * 3600_000);
  const hhmm = (d: Date) => d.toISOString().slice(11, 16);
  return `${hhmm(opens)}-${hhmm(new Date(opens.getTime() + 3600_000))}`;
}
