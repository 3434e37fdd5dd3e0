// The programs the tests start as real processes, from the test run's build when the runner made one
// (KLR_TEST_BUILD, scripts/run-tests.ts: `npm run build`'s output, the JavaScript production runs, and
// the simulator bundled by scripts/build-sim.ts), else from the sources through tsx. Same programs
// either way; a built one starts in a third to a half of the CPU time, and the tests start hundreds.
import { join } from 'node:path';

const REPO_ROOT = join(import.meta.dirname, '..', '..');
const built = process.env.KLR_TEST_BUILD;
const TSX = ['--import', 'tsx'];

/** healctl's script: `node HEALCTL_SCRIPT <command>`. */
export const HEALCTL_SCRIPT = built
  ? join(built, 'client', 'healctl.js')
  : join(REPO_ROOT, 'bin', 'healctl.js');

/** The simulated vLLM: `node ...SIM_ARGS --config FILE`. */
export const SIM_ARGS: readonly string[] = built
  ? [join(built, 'sim', 'js', 'vllm-sim.js')]
  : [...TSX, join(REPO_ROOT, 'sim', 'vllm-sim.ts')];

/** The simulator's supervisor: `node ...SUPERVISOR_ARGS run|restart|stop|status ...`. */
export const SUPERVISOR_ARGS: readonly string[] = built
  ? [join(built, 'sim', 'js', 'supervisor.js')]
  : [...TSX, join(REPO_ROOT, 'sim', 'supervisor.ts')];

/**
 * The production worker: the build's `workers/main.js` on its pre-built workflow bundle, as production
 * runs it, else `src/workers/main.ts`, which bundles the workflows at start (about 10 CPU-s more).
 */
export const WORKER_ARGS: readonly string[] = built
  ? [join(built, 'workers', 'main.js')]
  : [...TSX, join(REPO_ROOT, 'src', 'workers', 'main.ts')];
