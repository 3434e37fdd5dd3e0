// The alert rules as Prometheus itself reads them: `promtool check rules` (syntax, templates) and
// `promtool test rules` (the unit tests with input series in deploy/prometheus/tests/), both with
// Debian's real promtool; the compose Prometheus config with `promtool check config`; every metric name a
// rule reads is one the worker or the observer exports (src/metrics/catalog.ts,
// src/observer/observer-metrics.ts, kloros_build_info) or Prometheus' own `up`; the scrape alerts cover
// exactly the kloros jobs of the config; and the committed file is what `npm run render:rules` writes
// for the default runbook base, while another base renders a file promtool accepts too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, constants, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { METRICS } from '../../src/metrics/catalog.js';
import { BUILD_INFO } from '../../src/metrics/build-info.js';
import { OBSERVER_METRICS } from '../../src/observer/observer-metrics.js';
import { DEFAULT_RUNBOOK_BASE_URL } from '../../scripts/render-rules/runbook-urls.js';
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
  assert.match(r.all ?? '', /SUCCESS: 8 rules found/);
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

test('promtool test rules fails when the stale-figures threshold is off by one (figures exactly 15 min old)', async () => {
  const { mkdtemp, writeFile, rm, mkdir } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'klr-rules-'));
  try {
    await mkdir(join(dir, 'tests'));
    const text = await readFile(RULES, 'utf8');
    const expr = 'time() - kloros_state_last_read_timestamp_seconds > 900';
    assert.ok(text.includes(expr));
    await writeFile(join(dir, 'kloros_canary.rules.yml'), text.replace(expr, expr.replace('>', '>=')));
    await writeFile(join(dir, 'tests', 'kloros_canary.rules.test.yml'), await readFile(RULE_TESTS, 'utf8'));
    const r = await promtool(['test', 'rules', join(dir, 'tests', 'kloros_canary.rules.test.yml')]);
    assert.notEqual(r.exitCode, 0, 'figures exactly 900 s old must not start the alert');
    assert.match(r.all ?? '', /KLoROS_WorkerFiguresStale/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('every alert has a severity, a summary, a description naming a healctl command and an absolute runbook URL to its section of docs/alerts.md', async () => {
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
    assert.equal(new URL(url).href, url, `${rule.alert}: runbook_url ${url} is an absolute URL`);
    assert.ok(
      url.startsWith(`${DEFAULT_RUNBOOK_BASE_URL}#`),
      `${rule.alert}: runbook_url ${url} is under the base`,
    );
    const anchor = url.slice(DEFAULT_RUNBOOK_BASE_URL.length + 1);
    assert.equal(anchor, rule.alert.toLowerCase(), `${rule.alert}: the anchor is the alert's name`);
    assert.ok(anchors.has(anchor), `${rule.alert}: docs/alerts.md has no heading for #${anchor}`);
  }
  const severities = all.map((r) => `${r.alert}:${r.labels?.severity}`);
  for (const s of [
    'KLoROS_EscalationRequested:warning',
    'KLoROS_CanaryBudgetLow:warning',
    'KLoROS_CanaryEligible:info',
    'KLoROS_TargetDown:warning',
    'KLoROS_TargetAbsent:warning',
    'KLoROS_WorkerFiguresStale:warning',
  ])
    assert.ok(severities.includes(s), `expected ${s} in ${severities.join(', ')}`);
  assert.ok(
    severities.some((s) => s.endsWith(':critical')),
    'a critical alert for a failed restore',
  );
});

test("every metric a rule reads is exported by the worker or the observer, or is Prometheus' up", async () => {
  // `up` is the series Prometheus itself writes for every target it scrapes.
  const exported = [
    ...exportedSeriesNames([...Object.values(METRICS), ...Object.values(OBSERVER_METRICS), BUILD_INFO]),
    'up',
  ];
  const used = new Set<string>();
  for (const rule of await rules()) {
    const names = metricNames(rule.expr);
    assert.ok(names.length > 0, `${rule.alert}: no metric name found in ${rule.expr}`);
    assert.deepEqual(unknownNames(names, exported), [], `${rule.alert}: names nothing exports`);
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
  for (const job of ['kloros-healing', 'kloros-temporal-sdk', 'kloros-observer']) {
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

test('the scrape alerts cover exactly the kloros jobs Prometheus is configured with', async () => {
  const config = parseYaml(await readFile(CONFIG, 'utf8')) as { scrape_configs: { job_name: string }[] };
  const jobs = config.scrape_configs.map((j) => j.job_name).filter((j) => j.startsWith('kloros-'));
  assert.deepEqual(jobs.sort(), ['kloros-healing', 'kloros-observer', 'kloros-temporal-sdk']);
  const byName: Record<string, Rule> = Object.fromEntries((await rules()).map((r) => [r.alert ?? '', r]));
  const down = byName.KLoROS_TargetDown?.expr ?? '';
  const m = /^up\{job=~"([^"]+)"\} == 0$/.exec(down.trim());
  assert.ok(m, `KLoROS_TargetDown: up{job=~"…"} == 0, got ${down}`);
  assert.deepEqual(m[1]!.split('|').sort(), jobs);
  const absent = byName.KLoROS_TargetAbsent?.expr ?? '';
  const named = [...absent.matchAll(/absent\(up\{job="([^"]+)"\}\)/g)].map((a) => a[1]!);
  assert.deepEqual(
    named.sort(),
    jobs,
    `KLoROS_TargetAbsent: absent(up{job="…"}) for each job, got ${absent}`,
  );
});

/** `npm run render:rules` as an operator runs it (the script itself, through tsx). */
function render(args: string[], env: Record<string, string> = {}) {
  return execa(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'render-rules.ts'), ...args],
    {
      cwd: REPO_ROOT,
      env: { KLR_RUNBOOK_BASE_URL: '', ...env },
      reject: false,
      stripFinalNewline: false,
    },
  );
}

test('the committed rules are what render:rules writes for the default runbook base (they cannot drift)', async () => {
  const r = await render(['--out', '-']);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(r.stdout, await readFile(RULES, 'utf8'));
});

test("render:rules with an operator's base: only the runbook URLs change, and promtool accepts the file", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'klr-render-'));
  try {
    const out = join(dir, 'rules.yml');
    const base = 'https://wiki.acme.internal/sre/kloros/alerts.md';
    const r = await render(['--runbook-base-url', base, '--out', out]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, /runbook_url = https:\/\/wiki\.acme\.internal\/sre\/kloros\/alerts\.md#<alert>/);
    const committed = await readFile(RULES, 'utf8');
    const rendered = await readFile(out, 'utf8');
    const differing = committed
      .split('\n')
      .map((line, i) => [line, rendered.split('\n')[i]] as const)
      .filter(([a, b]) => a !== b);
    assert.equal(differing.length, (await rules()).length, 'one line per alert');
    for (const [before, after] of differing) {
      assert.match(
        before,
        /^ +runbook_url: 'https:\/\/kloros-healing\.example\/docs\/alerts\.md#kloros_[a-z]+'$/,
      );
      assert.match(
        after!,
        /^ +runbook_url: 'https:\/\/wiki\.acme\.internal\/sre\/kloros\/alerts\.md#kloros_[a-z]+'$/,
      );
    }
    const check = await promtool(['check', 'rules', out]);
    assert.equal(check.exitCode, 0, check.all);
    assert.match(check.all ?? '', /SUCCESS: 8 rules found/);
    // The environment works too; the flag wins over it.
    const viaEnv = await render(['--out', '-'], { KLR_RUNBOOK_BASE_URL: 'http://docs.internal/alerts' });
    assert.match(viaEnv.stdout, /runbook_url: 'http:\/\/docs\.internal\/alerts#kloros_targetdown'/);
    const both = await render(['--out', '-', '--runbook-base-url', base], {
      KLR_RUNBOOK_BASE_URL: 'http://docs.internal/alerts',
    });
    assert.doesNotMatch(both.stdout, /docs\.internal/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('render:rules refuses a base that is not an absolute http(s) URL with one line, exit 2, and writes nothing', async () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [
      ['--runbook-base-url', 'ftp://files.example/alerts.md'],
      {},
      /^render:rules: --runbook-base-url "ftp:\/\/files\.example\/alerts\.md": ftp: is not http or https; expected an absolute http\(s\) URL/,
    ],
    [['--runbook-base-url', 'docs/alerts.md'], {}, /"docs\/alerts\.md": not an absolute URL; expected/],
    [['--runbook-base-url', 'https://x.example/alerts.md#top'], {}, /has a #fragment/],
    [['--runbook-base-url', 'https://me:secret@x.example/a'], {}, /carries credentials/],
    [
      [],
      { KLR_RUNBOOK_BASE_URL: 'javascript:alert(1)' },
      /^render:rules: KLR_RUNBOOK_BASE_URL "javascript:alert\(1\)": javascript: is not http/,
    ],
    [['--runbook-base'], {}, /^render:rules: Unknown option '--runbook-base'.*usage: npm run render:rules/],
  ];
  for (const [args, env, message] of cases) {
    const r = await render([...args, '--out', '/nonexistent/dir/rules.yml'], env);
    assert.equal(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.trim(), message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
