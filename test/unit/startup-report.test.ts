// vLLM's start-up accounting read from its log (issue 14, part 3), on the real start-up reports of
// test/fixtures/vllm-startup-reports (vLLM 0.5 → 0.24, V0 and V1, with their sources): every figure the
// corpus parsed from what vLLM printed must be read back from the printed lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { StartupReportReader, readStartupReport } from '../../src/domain/startup-report.js';

const DIR = join('test', 'fixtures', 'vllm-startup-reports');
const CASES = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({ file: f, ...(JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Case) }));

interface Case {
  printed: string[];
  figures: Record<string, unknown>;
}

const FIELDS = [
  'weightsGiB',
  'activationPeakGiB',
  'nonTorchGiB',
  'kvCacheGiB',
  'kvTokens',
  'gpuBlocks',
  'cudaGraphGiB',
  'cudaGraphEstimateGiB',
  'requestedGiB',
] as const;

/** Whether a figure is printed as such (the corpus also derives figures that vLLM does not print). */
const printedIn = (text: string, n: number): boolean =>
  [String(n), n.toLocaleString('en-US'), n.toFixed(2)].some((form) => text.includes(form));

test('every figure of the real start-up reports is read from the printed lines', () => {
  let checked = 0;
  const wrong: string[] = [];
  for (const c of CASES) {
    const report = readStartupReport(c.printed) as Record<string, unknown>;
    const text = c.printed.join('\n');
    for (const field of FIELDS) {
      const want = c.figures[field];
      if (typeof want !== 'number' || !printedIn(text, want)) continue;
      checked++;
      const got = report[field];
      if (typeof got !== 'number' || Math.abs(got - want) > 0.011)
        wrong.push(`${c.file}: ${field} ${String(got)} ≠ ${want}`);
    }
    const concurrency = c.figures.maxConcurrency;
    if (typeof concurrency === 'number' && printedIn(text, concurrency)) {
      checked++;
      const got = (report as { maxConcurrency?: { times: number } }).maxConcurrency?.times;
      if (got !== concurrency) wrong.push(`${c.file}: maxConcurrency ${String(got)} ≠ ${concurrency}`);
    }
  }
  console.log(`# ${checked} printed figures of ${CASES.length} real start-up reports checked`);
  assert.ok(checked >= 80, `${checked} figures`);
  assert.deepEqual(wrong, []);
});

test('the latest start counts: a restart resets what was read before it', () => {
  const reader = new StartupReportReader();
  for (const line of [
    'INFO 11-28 03:00:00 [api_server.py:1] vLLM API server version 0.8.5',
    '(EngineCore_0 pid=1) INFO 11-28 03:00:10 [gpu_model_runner.py:1] Model loading took 14.99 GiB and 4.2 seconds',
    '(EngineCore_0 pid=1) INFO 11-28 03:00:20 [gpu_worker.py:1] Available KV cache memory: 53.45 GiB',
    'INFO 11-28 04:00:00 [api_server.py:1] vLLM API server version 0.8.5',
    '(EngineCore_0 pid=2) INFO 11-28 04:00:10 [gpu_model_runner.py:1] Model loading took 14.99 GiB and 4.1 seconds',
  ])
    reader.push(line);
  assert.deepEqual(reader.latest, { version: '0.8.5', engine: 'v1', weightsGiB: 14.99 });
  // The running config's figures while it restarts: the previous start, which sized its KV cache.
  assert.deepEqual(reader.latestMeasured, {
    version: '0.8.5',
    engine: 'v1',
    weightsGiB: 14.99,
    kvCacheGiB: 53.45,
  });
  reader.push(
    '(EngineCore_0 pid=2) INFO 11-28 04:00:20 [gpu_worker.py:1] Available KV cache memory: 40.00 GiB',
  );
  assert.equal(reader.latestMeasured.kvCacheGiB, 40, 'once the new start sized its cache, it counts');
});
