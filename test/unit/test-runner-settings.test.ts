// The test runner's switches (scripts/run-tests.ts): a value other than 1 or 0 stops the run before
// anything starts, with exit 2 and a line naming the variable and what it takes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

function runner(env: Record<string, string>) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/run-tests.ts', 'test/unit/healing-plan'], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

for (const name of ['KLR_TEST_CPU', 'KLR_TEST_USE_BUILD', 'KLR_TEST_RERUN_HUNG']) {
  test(`${name}=yes is refused: exit 2, the variable and what it takes`, () => {
    const r = runner({ [name]: 'yes' });
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`^${name}=yes: expected 1 \\(on\\) or 0 \\(off\\)$`, 'm'));
    assert.doesNotMatch(r.stdout, /files in/, 'no file ran');
  });
}
