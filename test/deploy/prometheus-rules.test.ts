// The alert rules as Prometheus itself reads them: `promtool check rules` (syntax, templates) and
// `promtool test rules` (the unit tests with input series in deploy/prometheus/tests/), both with
// Debian's real promtool; the compose Prometheus config with `promtool check config`; and every metric
// name a rule reads is one the worker exports (src/metrics/catalog.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, constants, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { METRICS } from '../../src/metrics/catalog.js';
import { REPO_ROOT } from '../support/heal-stack.js';
import { exportedSeriesNames, metricNames, unknownNames } from '../support/promql-names.js';

const PROMTOOL = process.env.KLR_PROMTOOL ?? 'promtool';
const PROM_DIR = join(REPO_ROOT, 'deploy', 'prometheus');
const RULES = join(PROM_DIR, 'kloros_canary.rules.yml');
const RULE_TESTS = join(PROM_DIR, 'tests', 'kloros_canary.rules.test.yml');
const CONFIG = join(PROM_DIR, 'prometheus.yml');

/** Runs promtool; a missing binary fails the test with what to install (never a skip). */
async function promtool(args: string[]) {
  const r = await execa(PROMTOOL, args, { cwd: REPO_ROOT, reject: false, all: true });
  if ((r as { code?: string }).code === 'ENOENT')
    assert.fail(
      `${PROMTOOL} not found: install the Debian package "prometheus" (sudo apt-get install prometheus; .ci/run does this), or set KLR_PROMTOOL to a promtool binary`,
    );
  return r;
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

async function rules(): Promise<Rule[]> {
  const doc = parseYaml(await readFile(RULES, 'utf8')) as { groups: { rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

test('promtool check rules accepts the rule file', async () => {
  const r = await promtool(['check', 'rules', RULES]);
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.all ?? '', /SUCCESS: 5 rules found/);
});

test('promtool test rules: every alert fires, stays silent and resolves as the unit tests expect', async () => {
  const r = await promtool(['test', 'rules', RULE_TESTS]);
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.all ?? '', /SUCCESS/);
  // Every alert of the file has a unit test.
  const tested = await readFile(RULE_TESTS, 'utf8');
  for (const rule of await rules())
    if (rule.alert)
      assert.match(tested, new RegExp(`alertname: ${rule.alert}\\b`), `${rule.alert} has no unit test`);
});

test('promtool test rules fails when an expectation is wrong (the check can fail)', async () => {
  // The same tests against a copy of the rules whose budget threshold is off by one.
  const { mkdtemp, writeFile, rm, mkdir } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'klr-rules-'));
  try {
    await mkdir(join(dir, 'tests'));
    const text = await readFile(RULES, 'utf8');
    assert.ok(text.includes('kloros_gpu_budget_seconds_remaining < 10'));
    await writeFile(
      join(dir, 'kloros_canary.rules.yml'),
      text.replace('kloros_gpu_budget_seconds_remaining < 10', 'kloros_gpu_budget_seconds_remaining <= 10'),
    );
    await writeFile(join(dir, 'tests', 'kloros_canary.rules.test.yml'), await readFile(RULE_TESTS, 'utf8'));
    const r = await promtool(['test', 'rules', join(dir, 'tests', 'kloros_canary.rules.test.yml')]);
    assert.notEqual(r.exitCode, 0, 'a budget of exactly 10 s must not fire');
    assert.match(r.all ?? '', /KLoROS_CanaryBudgetLow/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('every alert has a severity, a summary, a description naming a healctl command and a runbook anchor in docs/alerts.md', async () => {
  const alertsDoc = await readFile(join(REPO_ROOT, 'docs', 'alerts.md'), 'utf8');
  const anchors = new Set(
    [...alertsDoc.matchAll(/^#{2,3} (.+)$/gm)].map((m) =>
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^a-z0-9 _-]/g, '')
        .replace(/ /g, '-'),
    ),
  );
  const all = await rules();
  assert.ok(all.length >= 5);
  for (const rule of all) {
    assert.ok(rule.alert, `only alerts in the file, got ${JSON.stringify(rule)}`);
    assert.match(rule.labels?.severity ?? '', /^(critical|warning|info)$/, `${rule.alert}: severity`);
    assert.ok((rule.annotations?.summary ?? '').length > 10, `${rule.alert}: summary`);
    assert.match(
      rule.annotations?.description ?? '',
      /`healctl [a-z]+/,
      `${rule.alert}: description says which healctl command`,
    );
    const url = rule.annotations?.runbook_url ?? '';
    const m = /^docs\/alerts\.md#(.+)$/.exec(url);
    assert.ok(m, `${rule.alert}: runbook_url ${url} points into docs/alerts.md`);
    assert.ok(anchors.has(m[1]!), `${rule.alert}: docs/alerts.md has no heading for #${m[1]}`);
  }
  const severities = all.map((r) => `${r.alert}:${r.labels?.severity}`);
  for (const s of [
    'KLoROS_EscalationRequested:warning',
    'KLoROS_CanaryBudgetLow:warning',
    'KLoROS_CanaryEligible:info',
  ])
    assert.ok(severities.includes(s), `expected ${s} in ${severities.join(', ')}`);
  assert.ok(
    severities.some((s) => s.endsWith(':critical')),
    'a critical alert for a failed restore',
  );
});

test('every metric a rule reads is exported by the worker (src/metrics/catalog.ts)', async () => {
  const exported = exportedSeriesNames(Object.values(METRICS));
  const used = new Set<string>();
  for (const rule of await rules()) {
    const names = metricNames(rule.expr);
    assert.ok(names.length > 0, `${rule.alert}: no metric name found in ${rule.expr}`);
    assert.deepEqual(unknownNames(names, exported), [], `${rule.alert}: names the worker does not export`);
    names.forEach((n) => used.add(n));
  }
  console.log(`rules read ${used.size} metrics: ${[...used].join(', ')}`);
});

test('promtool check config accepts the compose Prometheus config (rules, scrape jobs, alerting)', async () => {
  await access(CONFIG, constants.R_OK);
  const r = await promtool(['check', 'config', CONFIG]);
  assert.equal(r.exitCode, 0, r.all);
  assert.match(r.all ?? '', /SUCCESS: 1 rule files found/);
  const config = parseYaml(await readFile(CONFIG, 'utf8')) as {
    rule_files: string[];
    scrape_configs: {
      job_name: string;
      static_configs: { targets: string[]; labels?: Record<string, string> }[];
    }[];
    alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
  };
  const jobs = Object.fromEntries(config.scrape_configs.map((j) => [j.job_name, j]));
  for (const job of ['kloros-healing', 'kloros-temporal-sdk']) {
    assert.ok(jobs[job], `scrape job ${job}`);
    for (const sc of jobs[job].static_configs)
      assert.ok(sc.labels?.host, `${job}: every target has a host label`);
  }
  assert.ok(
    config.alerting.alertmanagers.some((a) =>
      a.static_configs.some((s) => s.targets.includes('alertmanager:9093')),
    ),
    'alerts go to the compose Alertmanager',
  );
});
