// Upgrade safety: every history that a released version recorded (test/replay/histories/<release>/, written
// by scripts/record-histories.ts) must replay against the current workflow code without a
// non-determinism error. A change that would break a workflow already running on a host fails here.
import { metricsSinks } from '../../src/metrics/metrics-sinks.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { quietRuntime, workflowBundle } from '../support/test-env.js';

const ROOT = join('test', 'replay', 'histories');

interface Index {
  release: string;
  histories: { file: string; scenario: string; workflowId: string; runId: string }[];
}

const releases = (await readdir(ROOT, { withFileTypes: true }))
  .filter((d) => d.isDirectory())
  .map((d) => d.name);

test('there are recorded histories to replay', () => {
  assert.ok(releases.length > 0, `no release folder under ${ROOT}`);
});

for (const release of releases) {
  test(`histories recorded by release ${release} replay on the current code`, async () => {
    quietRuntime();
    const index = JSON.parse(await readFile(join(ROOT, release, 'index.json'), 'utf8')) as Index;
    assert.ok(index.histories.length > 0, `${release}/index.json lists no history`);
    const histories = await Promise.all(
      index.histories.map(async (h) => ({
        workflowId: h.workflowId,
        history: JSON.parse(await readFile(join(ROOT, release, h.file), 'utf8')) as unknown,
      })),
    );
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: await workflowBundle(), replayName: `release-${release}`, sinks: metricsSinks(null) },
      histories,
    )) {
      replayed++;
      if (result.error) {
        const file = index.histories.find((h) => h.runId === result.runId)?.file ?? result.runId;
        failures.push(`${file}: ${result.error.name}: ${result.error.message}`);
      }
    }
    assert.equal(replayed, index.histories.length);
    assert.deepEqual(failures, [], `histories of ${release} that no longer replay:\n${failures.join('\n')}`);
  });
}
