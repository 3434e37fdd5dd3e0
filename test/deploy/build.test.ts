// `npm run build` as production uses it: the JavaScript and the pre-built workflow bundle, run with plain
// node (no tsx): healctl answers, and the worker loads the bundle instead of bundling at start, warns that
// its budget cannot hold the restart this host measured, and runs the workflows — a symptom sent by the
// built healctl is counted by the built worker.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { type DevServerHandle, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';

// The test runner's build for the run when it made one (KLR_TEST_BUILD, the same `scripts/build.ts`, whose exit
// the runner checked), else one of this file's own, inside the repository, so that the
// built files resolve the installed packages as dist/ does.
const shared = process.env.KLR_TEST_BUILD;
const OUT = shared ?? resolve('node_modules', '.cache', `klr-build-test-${process.pid}`);
const host = `built-${process.pid}`;
let server: DevServerHandle | undefined;
let worker: ResultPromise | undefined;
let dataDir: string;

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'klr-build-'));
});
after(async () => {
  worker?.kill('SIGTERM');
  await worker?.catch(() => undefined);
  await server?.stop();
  if (!shared) await rm(OUT, { recursive: true, force: true });
  await rm(dataDir, { recursive: true, force: true });
});

test('the build runs with plain node: healctl, and a worker on the pre-built workflow bundle', async () => {
  if (!shared) {
    const build = await execa(process.execPath, ['--import', 'tsx', 'scripts/build.ts', '--out-dir', OUT], {
      reject: false,
      all: true,
    });
    assert.equal(build.exitCode, 0, build.all);
    assert.match(build.all ?? '', /workflow bundle .*workflow-bundle\.js/);
  }

  const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
  const version = await execa(process.execPath, [join(OUT, 'client', 'healctl.js'), '--version'], {
    reject: false,
  });
  assert.equal(version.exitCode, 0, version.stderr);
  assert.equal(version.stdout.trim(), pkg.version);

  // This host measured 95 s restarts: the 60 s default budget cannot hold one, and the worker says so.
  await mkdir(join(dataDir, 'audit'), { recursive: true });
  await writeFile(
    join(dataDir, 'audit', `budget-${host}.jsonl`),
    JSON.stringify({ host, event: { kind: 'vllm_oom', outcome: 'promoted', downtimeMs: 95_000 } }) + '\n',
  );
  server = await startDevServer({ searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  const env = {
    TEMPORAL_ADDRESS: server.address,
    KLR_HOST: host,
    KLR_DATA_DIR: dataDir,
    // The runner holds the default metrics ports (9464-9466): a test serves none of them.
    KLR_METRICS_ADDR: 'off',
    KLR_SDK_METRICS_ADDR: 'off',
  };
  worker = execa(process.execPath, [join(OUT, 'workers', 'main.js')], { env, all: true, reject: false });
  const proc = worker;
  let output = '';
  const started = await new Promise<string>((resolveLine, reject) => {
    proc.all?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((l) => l.includes('host worker started'));
      if (line) resolveLine(line);
    });
    void proc.then(() => reject(new Error(`the built worker exited before it started:\n${output}`)));
  });
  assert.match(started, /workflow-bundle\.js/, 'the worker loads the pre-built bundle');
  assert.match(output, /KLR_GPU_MAINTENANCE_MAX_DOWNTIME \(60 s\) cannot cover the service's restart/);

  const symptom = await execa(
    process.execPath,
    [join(OUT, 'client', 'healctl.js'), 'symptom', 'vllm_oom', '--host', host, '--json'],
    { env, reject: false },
  );
  assert.equal(symptom.exitCode, 0, symptom.stderr);
  assert.equal((JSON.parse(symptom.stdout) as { count24h: number }).count24h, 1, symptom.stdout);
});
