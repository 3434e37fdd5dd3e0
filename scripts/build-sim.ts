// The simulator (sim/vllm-sim.ts, sim/supervisor.ts) bundled into plain JavaScript for a test run
// (scripts/run-tests.ts): the end-to-end and simulator tests start it, its supervisor and the
// supervisor's restart command dozens of times, and each start through tsx costs about a CPU-second
// more. Same sources; the packages stay external, resolved from node_modules as the sources resolve them.
import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';

/** The simulator's entry points, as `<outDir>/js/<name>.js`. */
export const SIM_ENTRIES = ['vllm-sim', 'supervisor'] as const;

/**
 * Writes `<outDir>/js/vllm-sim.js`, `<outDir>/js/supervisor.js` and a copy of sim/models at
 * `<outDir>/models`: the simulator finds its default model profile at `../models` from its own file
 * (sim/lib/settings.ts), and the bundle keeps that layout. `outDir` must lie inside the repository's
 * node_modules folder or below the repository, so that the external packages resolve.
 */
export async function buildSimulator(repoRoot: string, outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true });
  await build({
    entryPoints: SIM_ENTRIES.map((name) => join(repoRoot, 'sim', `${name}.ts`)),
    outdir: join(outDir, 'js'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  });
  await cp(join(repoRoot, 'sim', 'models'), join(outDir, 'models'), { recursive: true });
}
