// healctl worker: the GPU-host worker in the foreground — the same process as `npm run worker`
// (src/workers/main.ts); Ctrl-C or SIGTERM stops it after running activities finish.
import type { Command } from 'commander';
import { SettingsError } from '../../config/settings.js';
import { UsageError } from '../cli/errors.js';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('Run this GPU host’s worker in the foreground (same as `npm run worker`).')
    .addHelpText(
      'after',
      `
Configured by the environment like the systemd unit: KLR_HOST, KLR_DATA_DIR, KLR_SERVICE_*,
KLR_GPU_MAINTENANCE_*, KLR_METRICS_ADDR, TEMPORAL_* (see docs/configuration.md).

Examples:
  healctl worker
  KLR_HOST=gpu-node-1 TEMPORAL_ADDRESS=temporal.internal:7233 healctl worker`,
    )
    .action(async () => {
      try {
        // Loaded here: the worker (the SDK's worker, its bundler, the metrics) is most of what healctl
        // could load, and no other command needs it.
        const { runHostWorkerProcess } = await import('../../workers/run-host-worker.js');
        await runHostWorkerProcess();
      } catch (err) {
        // A bad setting is the operator's input: exit 2, like `npm run worker`.
        if (err instanceof SettingsError) throw new UsageError(`healctl worker: ${err.message}`);
        throw err;
      }
    });
}
