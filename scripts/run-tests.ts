// The test runner behind `npm test`: provisions the Temporal servers once (so test files don't race to
// build them), then runs every test file under Node's built-in runner, one process per file.
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { ensureTestServer } from '../src/servers/test-server.js';
import { resolveTemporalCli } from '../src/servers/temporal-cli.js';

async function findTests(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = await Promise.all(
    entries.map(async (e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return e.name === 'support' ? [] : findTests(path);
      return e.name.endsWith('.test.ts') ? [path] : [];
    }),
  );
  return files.flat().sort();
}

// `--chaos` (npm run test:chaos): only the long fault-injection and randomised runs under test/chaos/;
// without it (npm test) everything else. A path filter (npm run test:only -- <part>) picks from all.
const args = process.argv.slice(2);
const chaos = args.includes('--chaos');
const filters = args.filter((a) => a !== '--chaos');
const all = await findTests('test');
const isChaos = (f: string) => relative('test', f).startsWith(`chaos${sep}`);
const files =
  filters.length > 0
    ? all.filter((f) => filters.some((x) => f.includes(x)) && (!chaos || isChaos(f)))
    : all.filter((f) => isChaos(f) === chaos);
if (files.length === 0) {
  console.error(
    `no test file matches ${filters.join(' ')}; test files: ${all.map((f) => relative('.', f)).join(', ')}`,
  );
  process.exit(2);
}

const say = (m: string) => console.log(`# ${m}`);
const started = Date.now();
const cli = await resolveTemporalCli(say);
const testServer = await ensureTestServer(say);
say(`servers ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${cli}, ${testServer}`);

const concurrency = process.env.KLR_TEST_CONCURRENCY ?? '2';
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit', env: { ...process.env, TEMPORAL_CLI: cli, KLR_TEST_SERVER: testServer } },
);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
