// The runbook URLs of the alert rules (scripts/render-rules/runbook-urls.ts): which bases are accepted, and
// that rendering changes exactly the runbook_url values, quoted so that any URL stays one YAML string.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import {
  DEFAULT_RUNBOOK_BASE_URL,
  parseRunbookBase,
  renderRunbookUrls,
} from '../../scripts/render-rules/runbook-urls.js';

test('a base is an absolute http(s) URL without fragment or credentials', () => {
  assert.deepEqual(parseRunbookBase(DEFAULT_RUNBOOK_BASE_URL), { ok: true, url: DEFAULT_RUNBOOK_BASE_URL });
  assert.deepEqual(parseRunbookBase(' https://wiki.example.com '), {
    ok: true,
    url: 'https://wiki.example.com/',
  });
  assert.deepEqual(parseRunbookBase('http://docs.internal:8080/kloros/alerts?v=2'), {
    ok: true,
    url: 'http://docs.internal:8080/kloros/alerts?v=2',
  });
  const problem = (text: string) => {
    const r = parseRunbookBase(text);
    return r.ok ? null : r.problem;
  };
  assert.equal(problem('docs/alerts.md'), 'not an absolute URL');
  assert.equal(problem(''), 'not an absolute URL');
  assert.equal(problem('ftp://x.example/a'), 'ftp: is not http or https');
  assert.equal(problem('file:///etc/passwd'), 'file: is not http or https');
  assert.match(problem('https://x.example/a#top') ?? '', /#fragment/);
  assert.match(problem('https://x.example/a#') ?? '', /#fragment/);
  assert.match(problem('https://user:pw@x.example/a') ?? '', /credentials/);
});

const RULES = `# a comment that stays
groups:
  - name: one
    rules:
      - alert: KLoROS_One
        expr: up == 0 # runbook_url: not this
        annotations:
          summary: 'x'
          runbook_url: 'docs/alerts.md#kloros_one'
      - record: job:up:sum
        expr: sum(up)
  - name: two
    rules:
      - alert: KLoROS_Two
        expr: vector(1)
        annotations:
          description: >-
            runbook_url: in a description is text
          runbook_url: "https://old.example/alerts.md#kloros_two"
`;

test('rendering replaces each alert runbook_url value and nothing else', () => {
  const out = renderRunbookUrls(RULES, "https://wiki.example.com/o'brien/alerts.md");
  const before = RULES.split('\n');
  const after = out.split('\n');
  assert.equal(after.length, before.length);
  const changed = before.flatMap((line, i) => (line === after[i] ? [] : [i]));
  assert.deepEqual(
    changed.map((i) => after[i]),
    [
      "          runbook_url: 'https://wiki.example.com/o''brien/alerts.md#kloros_one'",
      "          runbook_url: 'https://wiki.example.com/o''brien/alerts.md#kloros_two'",
    ],
  );
  const doc = parseYaml(out) as { groups: { rules: { annotations?: Record<string, string> }[] }[] };
  assert.equal(
    doc.groups[0]!.rules[0]!.annotations!.runbook_url,
    "https://wiki.example.com/o'brien/alerts.md#kloros_one",
  );
  // Rendering again with the same base changes nothing.
  assert.equal(renderRunbookUrls(out, "https://wiki.example.com/o'brien/alerts.md"), out);
});

test('an alert without runbook_url, or a file that is not YAML, is an error, not a silent pass', () => {
  assert.throws(
    () =>
      renderRunbookUrls(
        RULES.replace("runbook_url: 'docs/alerts.md#kloros_one'", "x: 'y'"),
        DEFAULT_RUNBOOK_BASE_URL,
      ),
    /KLoROS_One: no annotations\.runbook_url/,
  );
  assert.throws(() => renderRunbookUrls('groups: [', DEFAULT_RUNBOOK_BASE_URL), /not valid YAML/);
});
