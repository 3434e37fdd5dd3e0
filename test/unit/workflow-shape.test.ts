// The workflows stay thin loops over pure steps (docs/workflows.md, "How the code is laid out"): the
// HealingWorkflow file is at most 200 lines and no function in src/workflows is longer than 80. A long
// function there is logic that belongs in a pure module of src/domain, where it can be tested in
// milliseconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const DIR = join(import.meta.dirname, '..', '..', 'src', 'workflows');
const MAX_FUNCTION_LINES = 80;

/** Every function, method and arrow function of a file with its name and length in lines. */
export function functionLengths(file: string, text: string): { name: string; lines: number }[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: { name: string; lines: number }[] = [];
  const lineOf = (pos: number) => source.getLineAndCharacterOfPosition(pos).line;
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const name =
        (node.name && ts.isIdentifier(node.name) ? node.name.text : undefined) ??
        (ts.isVariableDeclaration(node.parent) && ts.isIdentifier(node.parent.name)
          ? node.parent.name.text
          : '(anonymous)');
      found.push({ name, lines: lineOf(node.getEnd()) - lineOf(node.getStart(source)) + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

test(`no function in src/workflows is longer than ${MAX_FUNCTION_LINES} lines`, () => {
  const long: string[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.ts'))) {
    for (const f of functionLengths(file, readFileSync(join(DIR, file), 'utf8')))
      if (f.lines > MAX_FUNCTION_LINES) long.push(`${file}: ${f.name} has ${f.lines} lines`);
  }
  assert.deepEqual(long, []);
});

test('the HealingWorkflow file is at most 200 lines', () => {
  const lines = readFileSync(join(DIR, 'healing-workflow.ts'), 'utf8').split('\n').length;
  assert.ok(lines <= 200, `healing-workflow.ts has ${lines} lines`);
});

test('the measure sees a long function (the check can fail)', () => {
  const body = Array.from({ length: 90 }, (_, i) => `  const x${i} = ${i};`).join('\n');
  const found = functionLengths('x.ts', `export function tooLong(): void {\n${body}\n}\n`);
  assert.deepEqual(found, [{ name: 'tooLong', lines: 92 }]);
});
