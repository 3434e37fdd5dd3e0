// `npm start`: the local stack on the embedded default — the Temporal dev server (SQLite file under the
// data folder, Web UI on) and this host's worker — until Ctrl-C, which stops everything it started.
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { execa } from 'execa';
import { SettingsError, loadSettings } from '../src/config/settings.js';
import { formatListenAddress, loadMetricsSettings } from '../src/config/metrics-settings.js';
import { startDevServer } from '../src/servers/dev-server.js';
import { resolveTemporalCli } from '../src/servers/temporal-cli.js';
import { healingWorkflowId, hostTaskQueue } from '../src/domain/identifiers.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../src/workflows/search-attributes.js';

const say = (m: string) => console.log(`[start] ${m}`);

let settings;
let metrics;
try {
  settings = loadSettings();
  metrics = loadMetricsSettings();
} catch (err) {
  if (err instanceof SettingsError) {
    console.error(err.message);
    process.exit(2);
  }
  throw err;
}

const port = Number(process.env.KLR_TEMPORAL_PORT ?? 7233);
const uiPort = Number(process.env.KLR_TEMPORAL_UI_PORT ?? 8233);
await mkdir(settings.dataDir, { recursive: true });

const started = Date.now();
await resolveTemporalCli(say);
const server = await startDevServer({
  dbFile: join(settings.dataDir, 'temporal.sqlite'),
  port,
  uiPort,
  ui: true,
  searchAttributes: SEARCH_ATTRIBUTE_TYPES,
  logFile: join(settings.dataDir, 'temporal-server.log'),
});
say(
  `Temporal dev server at ${server.address} (pid ${server.pid}), data in ${join(settings.dataDir, 'temporal.sqlite')}, ready in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);

const worker = execa(process.execPath, ['--import', 'tsx', 'src/workers/main.ts'], {
  env: { TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: 'default' },
  stdio: 'inherit',
  reject: false,
});

const kind = 'vllm_oom';
say(`Web UI:      ${server.uiUrl ?? '(off)'}`);
say(
  `Worker:      host ${settings.host}, task queue ${hostTaskQueue(settings.host)} (pid ${worker.pid ?? '?'})`,
);
const metricsUrl = (a: typeof metrics.metrics) => (a ? `http://${formatListenAddress(a)}/metrics` : 'off');
say(
  `Metrics:     ${metricsUrl(metrics.metrics)} (Temporal SDK: ${metricsUrl(metrics.sdkMetrics)}); see docs/metrics.md`,
);
say('Try:');
const id = healingWorkflowId(settings.host, kind);
say(
  `  temporal workflow signal-with-start --address ${server.address} --workflow-id ${id} --type HealingWorkflow ` +
    `--task-queue ${hostTaskQueue(settings.host)} --input '{"host":"${settings.host}","kind":"${kind}"}' ` +
    `--signal-name symptom --signal-input '{"kind":"${kind}","details":{"deficitMb":512}}'`,
);
say(`  temporal workflow query --address ${server.address} --workflow-id ${id} --name state`);
say('Ctrl-C stops the worker and the server; the next `npm start` reuses the data.');

let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  say('stopping…');
  worker.kill('SIGTERM');
  await worker;
  await server.stop();
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
const result = await worker;
if (!stopping) {
  console.error(
    `[start] the worker exited (${String(result.exitCode ?? result.signal)}); stopping the server`,
  );
  await stop(1);
}
