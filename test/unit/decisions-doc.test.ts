// docs/decisions.md is the reference of the decision codes tools match on: it has one row for every code
// the workflows can record, and no row for a code that does not exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { DECISION_CODES } from '../../src/domain/decision-codes.js';

test('docs/decisions.md has one row for each decision code, and none for an unknown one', async () => {
  const doc = await readFile(new URL('../../docs/decisions.md', import.meta.url), 'utf8');
  const rows = [...doc.matchAll(/^\| `([a-z_]+)` +\| ([HC, ]+?) +\|/gm)].map((m) => m[1]!);
  for (const code of DECISION_CODES) {
    assert.equal(rows.filter((r) => r === code).length, 1, `docs/decisions.md: one row for ${code}`);
  }
  const known = new Set<string>(DECISION_CODES);
  assert.deepEqual(
    rows.filter((r) => !known.has(r)),
    [],
    'rows for codes that do not exist',
  );
});
