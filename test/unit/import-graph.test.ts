// The shape of src/: no import cycles, the domain pure (no Temporal, no Node, nothing outside itself),
// and the long-running edges (observer, workers, activities) never importing healctl's code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

const SRC = 'src';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every module specifier a file imports or re-exports, statically or dynamically. */
function specifiers(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/g))
    found.push(m[1]!);
  for (const m of text.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) found.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1]!);
  return found;
}

const files = sourceFiles(SRC);
const imports = new Map<string, { local: string[]; external: string[] }>();
for (const file of files) {
  const local: string[] = [];
  const external: string[] = [];
  for (const spec of specifiers(readFileSync(file, 'utf8'))) {
    if (spec.startsWith('.')) local.push(normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts'));
    else external.push(spec);
  }
  imports.set(file, { local, external });
}

test('every relative import names a file that exists', () => {
  const missing = [...imports].flatMap(([file, { local }]) =>
    local.filter((target) => !imports.has(target)).map((target) => `${file} → ${target}`),
  );
  assert.deepEqual(missing, []);
});

test('no import cycles in src/', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    path.push(file);
    for (const next of imports.get(file)?.local ?? []) {
      if (state.get(next) === 'open')
        cycles.push([...path.slice(path.indexOf(next)), next].map((f) => relative(SRC, f)).join(' → '));
      else if (!state.has(next) && imports.has(next)) visit(next);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) visit(file);
  assert.deepEqual(cycles, []);
});

test('the domain is pure: it imports only itself and zod', () => {
  const offending = [...imports]
    .filter(([file]) => file.startsWith(join(SRC, 'domain')))
    .flatMap(([file, { local, external }]) => [
      ...local.filter((t) => !t.startsWith(join(SRC, 'domain'))).map((t) => `${file} → ${t}`),
      ...external.filter((spec) => spec !== 'zod').map((spec) => `${file} → ${spec}`),
    ]);
  assert.deepEqual(offending, []);
});

test("the observer, the workers, the activities, the service and the workflows never import healctl's code", () => {
  const cli = [join(SRC, 'client')];
  const edges = [
    'observer',
    'workers',
    'activities',
    'service',
    'workflows',
    'metrics',
    'domain',
    'temporal',
  ];
  const offending = [...imports]
    .filter(([file]) => edges.some((e) => file.startsWith(join(SRC, e))))
    .flatMap(([file, { local }]) =>
      local.filter((t) => cli.some((c) => t.startsWith(c))).map((t) => `${file} → ${t}`),
    );
  assert.deepEqual(offending, []);
});
