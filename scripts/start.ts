// `npm start`: the local stack on the embedded default — the Temporal dev server (SQLite file under the
// data folder, Web UI on), this host's worker (with its /metrics) and the observer — until Ctrl-C, which
// stops every process it started. Without nvidia-smi it runs the demo: two simulated vLLM services on one
// simulated 8-GPU host, one of which runs out of GPU memory under load and is healed within about two
// minutes while the other is probed and left untouched (scripts/start/demo-*.ts).
import { join, relative, resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Client, Connection } from '@temporalio/client';
import { SettingsError, loadSettings } from '../src/config/settings.js';
import { formatListenAddress, loadMetricsSettings } from '../src/config/metrics-settings.js';
import { DEFAULT_TEMPORAL_ADDRESS } from '../src/config/temporal-connection.js';
import { type DevServerHandle, startDevServer } from '../src/servers/dev-server.js';
import { resolveTemporalCli } from '../src/servers/temporal-cli.js';
import { hostTaskQueue } from '../src/domain/identifiers.js';
import { formatLocalTime } from '../src/domain/maintenance-window.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../src/workflows/search-attributes.js';
import { ChildSet, waitForLogLine } from './start/children.js';
import { findNvidiaSmi } from './start/nvidia-smi-lookup.js';
import { DEMO_GPU_COUNT, demoSettings, demoWindow, settingsTable } from './start/demo-plan.js';
import { type DemoHost, startDemoServices } from './start/demo-service.js';
import { demoObserverEnv, demoWorkerEnv, observerConfigured } from './start/demo-env.js';
import { watchStages } from './start/stage-watcher.js';
import { neighbourLine, watchNeighbour } from './start/neighbour-watch.js';

const REPO_ROOT = resolve(import.meta.dirname, '..');
const KIND = 'vllm_oom';
const startedAt = Date.now();
const say = (m: string) => console.log(`[start] ${m}`);
const elapsed = () => `${Math.round((Date.now() - startedAt) / 1000)} s`;
const rel = (p: string) => {
  const r = relative(process.cwd(), p);
  return r === '' ? '.' : r.startsWith('..') ? p : r;
};

function exitOnSettingsError(err: unknown): never {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(err instanceof SettingsError ? 2 : 1);
}

let settings;
let metrics;
let nvidiaSmi;
try {
  settings = loadSettings();
  metrics = loadMetricsSettings();
  nvidiaSmi = await findNvidiaSmi(process.env);
} catch (err) {
  exitOnSettingsError(err);
}
const forced = process.env.KLR_DEMO?.trim();
const demo = forced === '1' ? true : forced === '0' ? false : nvidiaSmi === null;
if (!demo && nvidiaSmi === null) {
  exitOnSettingsError(new Error('KLR_DEMO=0 but no nvidia-smi was found (PATH, KLR_NVIDIA_SMI)'));
}

const port = Number(process.env.KLR_TEMPORAL_PORT ?? 7233);
const uiPort = Number(process.env.KLR_TEMPORAL_UI_PORT ?? 8233);
const dataDir = settings.dataDir;
const demoDir = join(dataDir, 'demo');
const logDir = join(dataDir, 'logs');
await mkdir(logDir, { recursive: true });

if (demo) {
  say('DEMO — no nvidia-smi found (PATH, KLR_NVIDIA_SMI), so this runs two simulated vLLM services on a');
  say('simulated 8-GPU H100 host: "llama" runs out of GPU memory under load and kloros-healing heals it;');
  say('"qwen" fits, and the demo checks that it is left untouched.');
  say(`Everything is real but the GPU: Temporal, the worker, the observer. Demo files: ${rel(demoDir)}/`);
} else {
  say(`GPU host: ${nvidiaSmi}; worker and observer run with your settings (docs/operating.md)`);
}

const children = new ChildSet();
let server: DevServerHandle | undefined;
let connection: Connection | undefined;
let watcher: { stop(): void } | undefined;
let neighbours: Array<Awaited<ReturnType<typeof watchNeighbour>>> = [];
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  say('stopping…');
  watcher?.stop();
  for (const n of neighbours) n.stop();
  await connection?.close().catch(() => undefined);
  await children.stopAll(say);
  if (server) {
    await server.stop();
    say(`stopped the Temporal dev server (pid ${server.pid}); data kept in ${rel(dataDir)}`);
  }
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
children.onUnexpectedExit = (child, how) => {
  console.error(`[start] ${child.name} (pid ${child.pid}) exited (${how}); see ${rel(child.logFile)}`);
  void stop(1);
};

try {
  await resolveTemporalCli(say);
  server = await startDevServer({
    dbFile: join(dataDir, 'temporal.sqlite'),
    port,
    uiPort,
    ui: true,
    searchAttributes: SEARCH_ATTRIBUTE_TYPES,
    logFile: join(logDir, 'temporal-server.log'),
  });
  say(
    `Temporal dev server at ${server.address} (pid ${server.pid}), data in ${rel(join(dataDir, 'temporal.sqlite'))}, ready after ${elapsed()}`,
  );

  const baseEnv: Record<string, string | undefined> = {
    ...process.env,
    TEMPORAL_ADDRESS: server.address,
    TEMPORAL_NAMESPACE: 'default',
    KLR_HOST: settings.host,
    KLR_DATA_DIR: dataDir,
  };
  let workerEnv = baseEnv;
  let observerEnv: Record<string, string | undefined> | null = observerConfigured(baseEnv) ? baseEnv : null;
  let demoHost: DemoHost | undefined;
  if (demo) {
    demoHost = await startDemoServices({ repoRoot: REPO_ROOT, demoDir, children, baseEnv });
    const window = demoWindow(Date.now(), settings.policy.maintenanceTimeZone);
    workerEnv = demoWorkerEnv(baseEnv, { repoRoot: REPO_ROOT, host: demoHost, window });
    observerEnv = demoObserverEnv(baseEnv, { host: demoHost, demoDir });
    say(
      `simulated host: ${DEMO_GPU_COUNT} GPUs (state ${rel(demoHost.gpuStatePath)}), services file ${rel(demoHost.servicesFile)}:`,
    );
    for (const s of demoHost.services) {
      const memory = s.plan.serving['gpu-memory-utilization'];
      say(
        `  ${s.name} ${s.baseUrl} on GPU ${s.plan.gpu}, gpu-memory-utilization ${memory}, ${s.plan.load} request/s: ` +
          `${s.plan.role} (supervisor pid ${s.supervisorPid}), log ${rel(s.logPath)}`,
      );
    }
    say('settings that differ from production:');
    for (const line of settingsTable(demoSettings(window, rel(demoHost.servicesFile)))) say(`  ${line}`);
    say(
      `the window opens at ${formatLocalTime(window.opensAt, window.timeZone)} ${window.timeZone}, in ${Math.round((window.opensAt - Date.now()) / 1000)} s`,
    );
  }

  const tsx = ['--import', 'tsx'];
  const worker = await children.start({
    name: 'worker',
    file: process.execPath,
    args: [...tsx, join(REPO_ROOT, 'src', 'workers', 'main.ts')],
    cwd: REPO_ROOT,
    env: workerEnv,
    logFile: join(logDir, 'worker.log'),
  });
  await waitForLogLine(worker, 'host worker started', 120_000);
  say(
    `worker: host ${settings.host}, task queue ${hostTaskQueue(settings.host)} (pid ${worker.pid}), log ${rel(worker.logFile)}`,
  );
  if (observerEnv) {
    const observer = await children.start({
      name: 'observer',
      file: process.execPath,
      args: [...tsx, join(REPO_ROOT, 'src', 'observer', 'main.ts')],
      cwd: REPO_ROOT,
      env: observerEnv,
      logFile: join(logDir, 'observer.log'),
    });
    await waitForLogLine(observer, 'observer started', 120_000);
    const follows = demoHost
      ? `the logs of ${demoHost.services.map((s) => `${s.name} (${rel(s.logPath)})`).join(' and ')}`
      : observerEnv.KLR_SERVICES_FILE
        ? `the services of ${observerEnv.KLR_SERVICES_FILE}`
        : (observerEnv.KLR_OBSERVER_FILE ??
          observerEnv.KLR_SERVICE_LOG ??
          observerEnv.KLR_OBSERVER_COMMAND ??
          'the HTTP door');
    say(`observer: follows ${follows} (pid ${observer.pid}), log ${rel(observer.logFile)}`);
  } else {
    say(
      'observer: off — set KLR_SERVICES_FILE or KLR_SERVICE_LOG (or KLR_OBSERVER_FILE / KLR_OBSERVER_COMMAND) to follow the service logs',
    );
  }

  const metricsUrl = (a: typeof metrics.metrics) => (a ? `http://${formatListenAddress(a)}/metrics` : 'off');
  const query = encodeURIComponent(`KlrKind="${KIND}"`);
  say(`Web UI:   ${server.uiUrl}/namespaces/default/workflows?query=${query}`);
  say(
    `Metrics:  ${metricsUrl(metrics.metrics)} (Temporal SDK: ${metricsUrl(metrics.sdkMetrics)}); docs/metrics.md`,
  );
  // healctl's own default is 127.0.0.1:7233: any other address must be in the command to be true.
  const healctl =
    server.address === DEFAULT_TEMPORAL_ADDRESS
      ? 'npm run healctl --'
      : `TEMPORAL_ADDRESS=${server.address} npm run healctl --`;
  say('Try, in another terminal:');
  say(`  ${healctl} status ${KIND}     what it knows and what it will do next`);
  say(`  ${healctl} list                every healing workflow`);
  say(`  ${healctl} watch ${KIND}      a live view`);
  say(
    `Ctrl-C stops everything it started; the next \`npm start\` reuses ${rel(dataDir)}/ (started ${elapsed()} ago)`,
  );

  // The services the demo does not expect to heal: probed from now on, reported when the healed one's
  // canary ends (promoted or not).
  neighbours = await Promise.all(
    (demoHost?.services ?? []).filter((s) => !s.plan.legacyIds).map((s) => watchNeighbour(s)),
  );
  connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const tell = (line: string) => console.log(`[${demo ? 'demo' : 'heal'} +${elapsed()}] ${line}`);
  watcher = watchStages({
    client,
    host: settings.host,
    kind: KIND,
    sinceMs: startedAt,
    onStage: (e) => {
      tell(e.line);
      if (e.stage === 'promoted' || e.stage === 'not-promoted')
        for (const n of neighbours) void n.report().then((r) => tell(neighbourLine(r)));
    },
  });
} catch (err) {
  console.error(`[start] ${err instanceof Error ? err.message : String(err)}`);
  await stop(1);
}
