// The observer daemon as a real process (src/observer/main.ts, through tsx), started with the given
// environment and resolved once it logged "observer started": with the URLs it reports for its HTTP door
// and its /metrics (null when off). For tests that scrape it (test/observer/observer-metrics-daemon.test.ts,
// and any e2e test that wants the dashboard's Observer row to have data).
import { join } from 'node:path';
import { REPO_ROOT } from './heal-stack.js';
import { type ReadyProcess, startReadyProcess } from './ready-process.js';

export interface ObserverProcess extends ReadyProcess {
  /** `http://127.0.0.1:<port>/metrics`, or null when KLR_OBSERVER_METRICS_ADDR is off. */
  metricsUrl: string | null;
  /** `http://127.0.0.1:<port>`, or null when the door is off. */
  doorUrl: string | null;
}

export const OBSERVER_MAIN = join(REPO_ROOT, 'src', 'observer', 'main.ts');

export async function startObserverProcess(env: Record<string, string>): Promise<ObserverProcess> {
  const proc = await startReadyProcess(['--import', 'tsx', OBSERVER_MAIN], {
    cwd: REPO_ROOT,
    // /metrics off unless `env` names an address: the default port (9466) is the test runner's.
    env: { KLR_OBSERVER_METRICS_ADDR: 'off', ...env },
    ready: '"observer started"',
    name: 'observer',
  });
  const line = proc
    .output()
    .split('\n')
    .find((l) => l.includes('"observer started"'));
  const started = JSON.parse(line ?? '{}') as { metrics?: string | null; httpDoor?: string | null };
  return { ...proc, metricsUrl: started.metrics ?? null, doorUrl: started.httpDoor ?? null };
}
