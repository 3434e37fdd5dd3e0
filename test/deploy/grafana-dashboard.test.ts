// The Grafana dashboard as a file Grafana provisions: its structure (unique panel ids, a grid position
// inside the 24-column grid, a datasource on every panel and target), the `host`, `service` and `kind`
// variables, every panel of a per-service metric filtered by `$service` with the service in its legend,
// the canary annotations — and every query (panels, annotations, variables) reads only metric names
// the worker or the observer exports (src/metrics/catalog.ts, src/observer/observer-metrics.ts,
// kloros_build_info), every metric of both catalogs is on some panel, and every query is valid PromQL once
// Grafana's variables are filled in (Debian's promtool parses them as recording rules).
// test/e2e/prometheus.test.ts runs the same queries against a real Prometheus during a heal cycle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { METRICS, SERVICE_LABELLED } from '../../src/metrics/catalog.js';
import { BUILD_INFO } from '../../src/metrics/build-info.js';
import { OBSERVER_METRICS } from '../../src/observer/observer-metrics.js';
import { REPO_ROOT } from '../support/heal-stack.js';
import { exportedSeriesNames, metricNames, unknownNames } from '../support/promql-names.js';
import {
  BUILTIN_VALUES,
  dashboardQueries,
  labelValuesQuery,
  substituteVariables,
  unresolvedVariables,
} from '../support/grafana-queries.js';

const DASHBOARD = join(REPO_ROOT, 'deploy', 'grafana', 'kloros-healing.json');
const PROVISIONING = join(REPO_ROOT, 'deploy', 'grafana', 'provisioning');
const PROMTOOL = process.env.KLR_PROMTOOL ?? 'promtool';
const DS_UID = '${DS_PROMETHEUS}';

interface Target {
  expr?: string;
  refId?: string;
  legendFormat?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string;
  query?: string | { query?: string };
  datasource?: { type?: string; uid?: string };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
  annotations: {
    list: { name: string; expr?: string; builtIn?: number; datasource?: { uid?: string } }[];
  };
}

const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
/** Every metric the dashboard may read: the worker's, the observer's, and kloros_build_info (both serve it). */
const CATALOG = [...Object.values(METRICS), ...Object.values(OBSERVER_METRICS), BUILD_INFO];
const exported = exportedSeriesNames(CATALOG);

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

const variableQuery = (v: Variable) => (typeof v.query === 'string' ? v.query : (v.query?.query ?? ''));

test('a provisionable dashboard: uid, title, schema version', () => {
  assert.equal(dashboard.uid, 'kloros-healing');
  assert.ok(dashboard.title);
  assert.ok(
    dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41,
    `schemaVersion ${dashboard.schemaVersion}`,
  );
  assert.ok(!('id' in dashboard) || (dashboard as { id?: unknown }).id === null, 'no fixed database id');
});

test('panels: unique ids, grid positions inside 24 columns without overlap, a datasource on every panel and target', () => {
  const panels = allPanels(dashboard.panels);
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, `duplicate panel ids in ${ids.join(',')}`);
  const cells = new Map<string, string>();
  for (const p of panels) {
    const where = `panel ${p.id} "${p.title}"`;
    const g = p.gridPos;
    assert.ok(g, `${where}: gridPos`);
    for (const k of ['x', 'y', 'w', 'h'] as const)
      assert.ok(Number.isInteger(g[k]) && g[k] >= 0, `${where}: gridPos.${k} = ${g[k]}`);
    assert.ok(g.w > 0 && g.h > 0 && g.x + g.w <= 24, `${where}: gridPos ${JSON.stringify(g)}`);
    for (let x = g.x; x < g.x + g.w; x++)
      for (let y = g.y; y < g.y + g.h; y++) {
        const other = cells.get(`${x},${y}`);
        assert.equal(other, undefined, `${where} overlaps ${other}`);
        cells.set(`${x},${y}`, where);
      }
    if (p.type === 'row') continue;
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: DS_UID }, `${where}: datasource`);
    assert.ok((p.targets ?? []).length > 0, `${where}: no targets`);
    const refIds = (p.targets ?? []).map((t) => t.refId);
    assert.equal(new Set(refIds).size, refIds.length, `${where}: duplicate refIds`);
    for (const t of p.targets ?? []) {
      assert.deepEqual(t.datasource, { type: 'prometheus', uid: DS_UID }, `${where} ${t.refId}: datasource`);
      assert.ok(t.expr?.trim(), `${where} ${t.refId}: expr`);
    }
  }
});

test('variables: the datasource, and host, service and kind from label_values over exported metrics', () => {
  const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
  assert.equal(vars.DS_PROMETHEUS?.type, 'datasource');
  assert.equal(vars.DS_PROMETHEUS?.query, 'prometheus');
  for (const [name, label] of [
    ['host', 'host'],
    ['service', 'service'],
    ['kind', 'kind'],
  ] as const) {
    const v = vars[name];
    assert.ok(v, `variable ${name}`);
    assert.equal(v.type, 'query');
    assert.equal(v.multi, true, `${name}: multi-select`);
    assert.equal(v.includeAll, true, `${name}: All`);
    // All is `.*`, which also matches a series without the label (a worker that names no service).
    assert.equal(v.allValue, '.*', `${name}: All matches every value`);
    assert.deepEqual(v.datasource, { type: 'prometheus', uid: DS_UID });
    const m = /^label_values\((\w+), (\w+)\)$/.exec(variableQuery(v));
    assert.ok(m, `${name}: label_values(metric, label), got ${variableQuery(v)}`);
    assert.equal(m[2], label);
    assert.deepEqual(unknownNames([m[1]!], exported), [], `${name}: metric`);
    if (name === 'service') assert.ok(SERVICE_LABELLED.has(m[1]!), `${name}: ${m[1]} has a service label`);
  }
  const order = dashboard.templating.list.map((v) => v.name);
  assert.ok(order.indexOf('host') < order.indexOf('service'), `host before service: ${order.join(', ')}`);
});

test("every panel of a worker's per-service metric is filtered by $service and names the service in its legend", () => {
  const bad: string[] = [];
  let checked = 0;
  for (const p of allPanels(dashboard.panels))
    for (const t of p.targets ?? []) {
      const expr = t.expr ?? '';
      if (!metricNames(expr).some((n) => SERVICE_LABELLED.has(n.replace(/_(bucket|sum|count)$/, ''))))
        continue;
      checked++;
      const where = `panel ${p.id} "${p.title}" ${t.refId}`;
      if (!/service=~"\$service\|?"/.test(expr)) bad.push(`${where}: no service=~"$service" in ${expr}`);
      // Series kept apart by host are kept apart by service too, and the legend says which.
      for (const by of expr.matchAll(/by \(([^)]*)\)/g)) {
        const labels = by[1]!.split(',').map((l) => l.trim());
        if (labels.includes('host') && !labels.includes('service')) bad.push(`${where}: by (${by[1]})`);
      }
      if (/by \([^)]*service/.test(expr) && !(t.legendFormat ?? '').includes('{{service}}'))
        bad.push(`${where}: legend ${t.legendFormat} does not name the service`);
    }
  assert.deepEqual(bad, []);
  assert.ok(checked >= 10, `${checked} targets read per-service metrics`);
});

test('annotations: canaries from increase of kloros_canary_runs_total', () => {
  const canaries = dashboard.annotations.list.find((a) => a.name === 'Canaries');
  assert.ok(canaries?.expr, 'a "Canaries" annotation with an expr');
  assert.match(canaries.expr, /increase\(kloros_canary_runs_total\{/);
  assert.equal(canaries.datasource?.uid, DS_UID);
});

test('every query reads only metrics the worker or the observer exports, and every catalog metric is on a panel', () => {
  const queries = dashboardQueries(dashboard);
  const bad: string[] = [];
  const onPanels = new Set<string>();
  for (const q of queries) {
    const names = metricNames(q.expr);
    if (names.length === 0) bad.push(`${q.where}: no metric in ${q.expr}`);
    for (const n of unknownNames(names, exported)) bad.push(`${q.where}: ${n} is not exported`);
    if (q.source === 'panel') names.forEach((n) => onPanels.add(n));
  }
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    // label_values(metric, label) reads the metric; any other variable query is PromQL itself.
    const lv = labelValuesQuery(v);
    const names = lv ? (lv.metric ? metricNames(lv.metric) : []) : metricNames(variableQuery(v));
    for (const n of unknownNames(names, exported)) bad.push(`variable ${v.name}: ${n} is not exported`);
  }
  assert.deepEqual(bad, []);
  const missing = CATALOG.filter((m) =>
    m.type === 'histogram' ? ![...onPanels].some((n) => n.startsWith(`${m.name}_`)) : !onPanels.has(m.name),
  ).map((m) => m.name);
  assert.deepEqual(missing, [], 'catalog metrics without a panel');
  console.log(`${queries.length} queries over ${onPanels.size} series names`);
});

test('every query is valid PromQL with the variables filled in (promtool parses them)', async () => {
  const values = { ...BUILTIN_VALUES, host: 'gpu-1|gpu-2', service: '(llama-70b|vllm)', kind: '.*' };
  const queries = dashboardQueries(dashboard);
  const rules = queries.map((q, i) => {
    const expr = substituteVariables(q.expr, values);
    assert.deepEqual(unresolvedVariables(expr), [], `${q.where}: variables left in ${expr}`);
    return { record: `dashboard:query_${i}`, expr };
  });
  // A broken expression must fail the check (so this test can fail).
  const dir = await mkdtemp(join(tmpdir(), 'klr-dash-'));
  try {
    const good = join(dir, 'queries.yml');
    await writeFile(good, toYaml({ groups: [{ name: 'dashboard', rules }] }));
    const bad = join(dir, 'broken.yml');
    await writeFile(
      bad,
      toYaml({ groups: [{ name: 'x', rules: [{ record: 'x:y', expr: 'sum by (kind (x)' }] }] }),
    );
    const ok = await execa(PROMTOOL, ['check', 'rules', good], { reject: false, all: true });
    if ((ok as { code?: string }).code === 'ENOENT')
      assert.fail(`${PROMTOOL} not found: install the Debian package "prometheus" (.ci/run does this)`);
    assert.equal(ok.exitCode, 0, ok.all);
    assert.match(ok.all ?? '', new RegExp(`SUCCESS: ${rules.length} rules found`));
    const broken = await execa(PROMTOOL, ['check', 'rules', bad], { reject: false, all: true });
    assert.notEqual(broken.exitCode, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('provisioning: a Prometheus datasource and a file provider for the dashboard', async () => {
  const ds = parseYaml(await readFile(join(PROVISIONING, 'datasources', 'prometheus.yml'), 'utf8')) as {
    apiVersion: number;
    datasources: { type: string; url: string; isDefault?: boolean }[];
  };
  assert.equal(ds.apiVersion, 1);
  assert.ok(ds.datasources.some((d) => d.type === 'prometheus' && d.isDefault && /^http:\/\//.test(d.url)));
  const dash = parseYaml(await readFile(join(PROVISIONING, 'dashboards', 'kloros-healing.yml'), 'utf8')) as {
    apiVersion: number;
    providers: { type: string; options: { path: string } }[];
  };
  assert.equal(dash.apiVersion, 1);
  assert.equal(dash.providers[0]?.type, 'file');
  assert.ok(dash.providers[0]?.options.path.startsWith('/'));
});
