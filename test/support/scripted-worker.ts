// A real host-worker process whose GPU side is scripted (KLR_TEST_CANARY=pass|fail|hang): the worker,
// its settings, its connection and its workflows are the production ones. The workflows come from the
// test run's bundle (KLR_TEST_WORKFLOW_BUNDLE, scripts/run-tests.ts) when there is one: bundling them at
// start costs about 10 CPU-s per worker.
import { loadSettings } from '../../src/config/settings.js';
import { loadTemporalTarget } from '../../src/config/temporal-connection.js';
import { createLogger } from '../../src/config/logger.js';
import { startHostWorker } from '../../src/workers/host-worker.js';
import { type CanaryScript, scriptedGpu } from './scripted-gpu.js';

const settings = loadSettings();
const gpu = scriptedGpu({ canaryScripts: [(process.env.KLR_TEST_CANARY ?? 'pass') as CanaryScript] });
const running = await startHostWorker({
  settings,
  target: loadTemporalTarget(),
  logger: createLogger('scripted-worker', 'warn'),
  gpuActivities: gpu.activities,
  ...(process.env.KLR_TEST_WORKFLOW_BUNDLE
    ? { workflowBundlePath: process.env.KLR_TEST_WORKFLOW_BUNDLE }
    : {}),
});
console.log(`worker ready on ${running.taskQueue}`);
await running.done;
