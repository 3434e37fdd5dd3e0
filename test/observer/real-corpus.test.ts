// Detection against real logs that no one here wrote (issue 14): every excerpt of
// test/fixtures/real-logs/ (public issue threads, with sources in its manifest) goes through the observer's
// detector as its own observer would read it — with the kind of the server whose log it is — and the
// incidents found are matched with the labelled ones. Prints precision, recall and the family and size
// agreement, with every miss and every false alarm; fails below recall 0.98 or on any false positive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { detectAll } from '../../src/observer/detector.js';
import type { Incident } from '../../src/observer/types.js';

const ROOT = join('test', 'fixtures', 'real-logs');

interface Label {
  kind: string;
  family: string;
  line: number;
  sizes?: { allocMb?: number; freeMb?: number; totalMb?: number; deficitMb?: number };
  gpu?: number;
  estimatedMaxModelLen?: number;
  xid?: number;
}

interface Entry {
  file: string;
  server: string;
  source: string;
  incidents: Label[];
}

/** The kind an observer of this server's log runs with (KLR_OBSERVER_KIND). */
const SERVER_KIND: Record<string, string> = {
  vllm: 'vllm_oom',
  pytorch: 'vllm_oom',
  kernel: 'vllm_oom',
  sglang: 'sglang_oom',
  tgi: 'tgi_oom',
  'llama.cpp': 'llamacpp_oom',
  ollama: 'ollama_oom',
  'tensorrt-llm': 'trtllm_oom',
  triton: 'trtllm_oom',
};

/** A detection may start a few lines before or after the labelled first line of the same failure. */
const LINE_TOLERANCE = 3;

const SIZE_KEYS = { allocMb: 'alloc', freeMb: 'free', totalMb: 'total', deficitMb: 'deficit' } as const;

function sizesAgree(label: Label, found: Incident): boolean {
  for (const [labelKey, key] of Object.entries(SIZE_KEYS) as [keyof typeof SIZE_KEYS, 'alloc'][]) {
    const want = label.sizes?.[labelKey];
    if (want === undefined) continue;
    const got = found.sizesMib[key];
    if (got === undefined || Math.abs(got - want) > Math.max(1, want * 0.001)) return false;
  }
  return true;
}

test('the real-log corpus: recall ≥ 0.98 and no false positive', async () => {
  const manifest = JSON.parse(await readFile(join(ROOT, 'manifest.json'), 'utf8')) as Entry[];
  assert.ok(manifest.length >= 60, `at least 60 excerpts (${manifest.length})`);
  let labelled = 0;
  let found = 0;
  let matched = 0;
  let familyAgrees = 0;
  let sizesLabelled = 0;
  let sizeAgrees = 0;
  const misses: string[] = [];
  const falseAlarms: string[] = [];
  const familyMismatches: string[] = [];
  const sizeMismatches: string[] = [];
  for (const entry of manifest) {
    const text = await readFile(join(ROOT, entry.file), 'utf8');
    const lines = text.replace(/\n$/, '').split('\n');
    const kind = SERVER_KIND[entry.server] ?? 'vllm_oom';
    const detected = detectAll(lines, { memoryKind: kind, arrivalMs: Date.UTC(2026, 11, 1) });
    labelled += entry.incidents.length;
    found += detected.length;
    const unused = [...detected];
    for (const label of entry.incidents) {
      const i = unused.findIndex(
        (d) => d.kind === label.kind && Math.abs(d.line - label.line) <= LINE_TOLERANCE,
      );
      if (i < 0) {
        misses.push(
          `${entry.file}:${label.line} ${label.kind}/${label.family}: ${lines[label.line - 1]?.trim().slice(0, 160)}`,
        );
        continue;
      }
      const [d] = unused.splice(i, 1) as [Incident];
      matched++;
      if (d.family === label.family) familyAgrees++;
      else familyMismatches.push(`${entry.file}:${label.line} labelled ${label.family}, found ${d.family}`);
      if (label.sizes && Object.keys(label.sizes).length > 0) {
        sizesLabelled++;
        if (sizesAgree(label, d)) sizeAgrees++;
        else
          sizeMismatches.push(
            `${entry.file}:${label.line} labelled ${JSON.stringify(label.sizes)}, found ${JSON.stringify(d.sizesMib)}`,
          );
      }
    }
    for (const d of unused) {
      falseAlarms.push(`${entry.file}:${d.line} ${d.kind}/${d.family}: ${d.text.slice(0, 160)}`);
    }
  }
  const precision = found === 0 ? 1 : (found - falseAlarms.length) / found;
  const recall = labelled === 0 ? 1 : matched / labelled;
  const pct = (a: number, b: number) => `${a}/${b} (${b === 0 ? '-' : ((100 * a) / b).toFixed(1)} %)`;
  console.log(
    `# real-log corpus: ${manifest.length} excerpts, ${labelled} incidents labelled, ${found} found`,
  );
  console.log(`#   precision ${precision.toFixed(3)}  recall ${recall.toFixed(3)}`);
  console.log(
    `#   family agrees ${pct(familyAgrees, matched)}; sizes agree ${pct(sizeAgrees, sizesLabelled)}`,
  );
  for (const m of misses) console.log(`#   MISS ${m}`);
  for (const f of falseAlarms) console.log(`#   FALSE ALARM ${f}`);
  for (const f of familyMismatches) console.log(`#   family ${f}`);
  for (const s of sizeMismatches) console.log(`#   sizes ${s}`);
  assert.deepEqual(falseAlarms, [], 'no false positive');
  assert.ok(recall >= 0.98, `recall ${recall.toFixed(3)} < 0.98`);
});
