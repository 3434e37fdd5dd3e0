// Entry point of the GPU-host worker (`npm run worker`, or the systemd unit on a GPU host): validates
// every setting, then serves this host's task queue until SIGINT/SIGTERM. `healctl worker` runs the same.
import { SettingsError } from '../config/settings.js';
import { runHostWorkerProcess } from './run-host-worker.js';

try {
  await runHostWorkerProcess();
} catch (err) {
  console.error(
    err instanceof SettingsError ? err.message : err instanceof Error ? err.message : String(err),
  );
  process.exit(err instanceof SettingsError ? 2 : 1);
}
