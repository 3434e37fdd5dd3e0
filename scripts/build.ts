// npm run build: the JavaScript that production runs (dist/, from src/ only) and the workflow bundle,
// built once here instead of at every worker start (dist/workflow-bundle.js, which the worker loads
// when it runs from dist/). tsx stays a development tool. `--out-dir DIR` builds elsewhere (tests).
import { spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DefaultLogger, bundleWorkflowCode } from '@temporalio/worker';

const args = process.argv.slice(2);
const at = args.indexOf('--out-dir');
const outDir = resolve(at >= 0 && args[at + 1] ? args[at + 1]! : 'dist');
const started = Date.now();
const say = (m: string) => console.log(`# build: ${m} (${((Date.now() - started) / 1000).toFixed(1)} s)`);

await rm(outDir, { recursive: true, force: true });
const tsc = spawnSync(
  process.execPath,
  ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json', '--outDir', outDir],
  { stdio: 'inherit' },
);
if (tsc.status !== 0) {
  console.error(`build: tsc failed (exit ${tsc.status ?? tsc.signal})`);
  process.exit(1);
}
say(`JavaScript in ${outDir}`);

const { code } = await bundleWorkflowCode({
  workflowsPath: join(outDir, 'workflows', 'index.js'),
  payloadConverterPath: join(outDir, 'workflows', 'payload-converter.js'),
  logger: new DefaultLogger('WARN'),
});
await writeFile(join(outDir, 'workflow-bundle.js'), code);
say(`workflow bundle ${join(outDir, 'workflow-bundle.js')} (${(code.length / 1024).toFixed(0)} KiB)`);
