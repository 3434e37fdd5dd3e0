// scripts/check.ts (npm test's type check and ESLint on one program) on a small project of its own: a type
// error and a typed rule's finding both fail it, and plain JavaScript files, outside the program, still lint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

test('a type error and a floating promise fail the check, each named; a .mjs file lints without the program', (t) => {
  // Inside the project so that the copied eslint.config.js resolves the project's packages.
  const dir = join('test-artifacts', `check-script-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync('eslint.config.js', join(dir, 'eslint.config.js'));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, types: [] },
      include: ['*.ts'],
    }),
  );
  writeFileSync(join(dir, 'typed.ts'), 'export function twice(n: number): string {\n  return n * 2;\n}\n');
  writeFileSync(
    join(dir, 'floating.ts'),
    'async function later(): Promise<void> {}\nexport function now(): void {\n  later();\n}\n',
  );
  writeFileSync(join(dir, 'plain.mjs'), 'export const one = 1;\n');

  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/check.ts', dir], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  const out = r.stdout + r.stderr;
  assert.equal(r.status, 1, out);
  assert.match(out, /typed\.ts.*\n?.*TS2322/, 'the type error, with its file');
  assert.match(out, /^type check: 1 error \(2 files/m);
  assert.match(
    out,
    /floating\.ts\n\s+3:3\s+error.*@typescript-eslint\/no-floating-promises/,
    'the typed rule ran',
  );
  assert.match(out, /^lint: 1 error \(4 files/m, 'eslint.config.js and plain.mjs linted clean');
  assert.doesNotMatch(out, /Parsing error/);
});
