// The test runner (scripts/run-tests.ts) runs each file directly (`node --import tsx <file>`, not under
// `--test`): a failing test, or a file that throws before its tests, must still fail the file and the run,
// and the counts must add up. Runs the runner on a small tree of its own files (its cwd), on the sources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO_ROOT = join(import.meta.dirname, '..', '..');

test('a failing test or a file that throws fails its file and the run; a passing file does not', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'klr-runner-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
  mkdirSync(join(dir, 'test', 'support'), { recursive: true });
  mkdirSync(join(dir, 'test', 'x'));
  const head = "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\n";
  writeFileSync(join(dir, 'test', 'x', 'pass.test.ts'), `${head}test('passes', () => {});\n`);
  writeFileSync(
    join(dir, 'test', 'x', 'fail.test.ts'),
    `${head}test('passes too', () => {});\ntest('fails', () => assert.equal(1, 2));\n`,
  );
  writeFileSync(join(dir, 'test', 'x', 'throws.test.ts'), `${head}throw new Error('before any test');\n`);

  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'run-tests.ts')], {
    cwd: dir,
    env: { ...process.env, KLR_TEST_USE_BUILD: '0', KLR_TEST_CPU: '0' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const out = r.stdout + r.stderr;
  assert.equal(r.status, 1, out);
  assert.match(out, /^# 3 files in \d+ s: tests 3, pass 2, fail 1,/m);
  assert.match(out, /^# FAILED test\/x\/fail\.test\.ts \(exit 1,/m);
  assert.match(out, /^# FAILED test\/x\/throws\.test\.ts \(exit 1,/m);
  assert.doesNotMatch(out, /FAILED test\/x\/pass\.test\.ts/);
});
