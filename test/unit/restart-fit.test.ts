// The worker's start-up warning when the budget or the restart timeout cannot hold one measured restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measuredRestart } from '../../src/activities/restart-estimate.js';
import { restartFitWarnings } from '../../src/domain/restart-fit.js';

test('nothing measured, or a restart that fits: no warning', () => {
  assert.deepEqual(restartFitWarnings({ budgetSeconds: 60, restartTimeoutMs: 60_000, measured: null }), []);
  assert.deepEqual(
    restartFitWarnings({
      budgetSeconds: 60,
      restartTimeoutMs: 60_000,
      measured: { medianMs: 20_000, promotions: 3 },
    }),
    [],
  );
});

test('a 95 s restart under a 60 s budget and timeout: both said, with a value that fits', () => {
  const warnings = restartFitWarnings({
    budgetSeconds: 60,
    restartTimeoutMs: 60_000,
    measured: { medianMs: 95_000, promotions: 4 },
  });
  assert.equal(warnings.length, 2);
  assert.match(
    warnings[0]!,
    /^KLR_GPU_MAINTENANCE_MAX_DOWNTIME \(60 s\) cannot cover .*median 95 s over 4 promotions.* e\.g\. 4m$/,
  );
  assert.match(warnings[1]!, /^KLR_SERVICE_RESTART_TIMEOUT \(60 s\) is shorter than .* e\.g\. 3m$/);
  assert.deepEqual(
    restartFitWarnings({
      budgetSeconds: 600,
      restartTimeoutMs: null,
      measured: { medianMs: 95_000, promotions: 1 },
    }),
    [],
  );
});

test('the measured restart is the median of the audit log’s promotions only', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'klr-restart-fit-'));
  try {
    assert.equal(await measuredRestart(dir, 'gpu-a'), null);
    const line = (outcome: string, downtimeMs: number) =>
      JSON.stringify({ host: 'gpu-a', event: { kind: 'vllm_oom', outcome, downtimeMs } });
    await writeFile(
      join(dir, 'budget-gpu-a.jsonl'),
      [
        line('promoted', 90_000),
        line('restored', 300_000),
        'not json',
        line('promoted', 100_000),
        line('promoted', 95_000),
      ].join('\n') + '\n',
    );
    assert.deepEqual(await measuredRestart(dir, 'gpu-a'), { medianMs: 95_000, promotions: 3 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
