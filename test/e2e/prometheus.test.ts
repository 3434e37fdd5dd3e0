// A real Prometheus watches a real heal cycle: Debian's Prometheus on loopback scrapes the production
// worker's /metrics (and the SDK's) every second with the project's alert rules loaded, while the
// simulated vLLM OOMs, three symptoms arm the escalation, and the canary promotes a smaller config in
// the maintenance window (opening 1-2 minutes after the start). The real observer (src/observer/main.ts)
// follows the simulated service's log from its start and is scraped as the job kloros-observer; its
// Temporal address is a loopback port nothing listens on, so what it detects (and what its HTTP door
// accepts) only goes to its spool, and the worker's symptom counts below are the test's own. Read through
// Prometheus' HTTP API: KLoROS_EscalationRequested stays quiet below the threshold, goes pending and
// firing once armed, and resolves after the promotion; the observer's incident, spooled symptoms,
// delivery errors and door answers arrive; every panel query of the Grafana dashboard returns data.
//
// The rules are loaded from a test-time copy of deploy/prometheus/kloros_canary.rules.yml in which only
// `for:` durations longer than 2 s are cut to 2 s and group intervals dropped (the test's 1 s
// evaluation applies): the expressions, labels and annotations are the deployed ones, checked against
// the series the worker really exports; the production durations are covered by the promtool tests.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { type DevServerHandle, pickFreePort, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import { recordSymptom } from '../../src/temporal/symptoms.js';
import { eventually, healingState } from '../support/healing-harness.js';
import { REPO_ROOT } from '../support/heal-stack.js';
import { type Scenario, complete, startScenario, torchOomDetails } from '../support/heal-scenario.js';
import { type ObserverProcess, startObserverProcess } from '../support/observer-process.js';
import {
  type PrometheusHandle,
  type PromAlert,
  requirePrometheus,
  startPrometheus,
} from '../support/prometheus.js';
import {
  BUILTIN_VALUES,
  type GrafanaDashboard,
  dashboardQueries,
  labelValuesQuery,
  substituteVariables,
  unresolvedVariables,
} from '../support/grafana-queries.js';

const RULES_PATH = join(REPO_ROOT, 'deploy', 'prometheus', 'kloros_canary.rules.yml');
const DASHBOARD_PATH = join(REPO_ROOT, 'deploy', 'grafana', 'kloros-healing.json');
const ALERT = 'KLoROS_EscalationRequested';
const TEST_FOR = '2s';
const MINUTE = 60_000;
/** The observer's HTTP door token (≥ 16 characters). */
const DOOR_TOKEN = `prom-e2e-door-token-${process.pid}`;

const host = `prom-e2e-${process.pid}`;
const kind = 'vllm_oom';

let server: DevServerHandle | undefined;
let connection: Connection | undefined;
let client: Client;
let stack: Scenario | undefined;
let observer: ObserverProcess | undefined;
let prometheus: PrometheusHandle | undefined;
let dir: string | undefined;

interface RuleFile {
  groups: {
    name: string;
    interval?: string;
    rules: { alert?: string; record?: string; for?: string; keep_firing_for?: string }[];
  }[];
}

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

/** A Prometheus duration ("2m", "1h30m", "0s") in ms. */
function durationMs(text: string): number {
  const parts = [...text.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)];
  assert.ok(parts.length > 0 && parts.map((p) => p[0]).join('') === text, `a Prometheus duration: ${text}`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_MS[p[2]!]!, 0);
}

/** The deployed rules with `for:` shortened and group intervals dropped (see the header). */
async function testRules(target: string): Promise<RuleFile> {
  let text: string;
  try {
    text = await readFile(RULES_PATH, 'utf8');
  } catch {
    throw new Error(`${RULES_PATH} is missing: the alert rules this test loads (issue 6, item 2)`);
  }
  const rules = parseYaml(text) as RuleFile;
  assert.ok(Array.isArray(rules?.groups), `${RULES_PATH}: expected "groups:"`);
  for (const group of rules.groups) {
    delete group.interval;
    for (const rule of group.rules) {
      if (rule.for !== undefined && durationMs(rule.for) > durationMs(TEST_FOR)) rule.for = TEST_FOR;
      delete rule.keep_firing_for;
    }
  }
  await writeFile(target, toYaml(rules));
  return rules;
}

before(async () => {
  await requirePrometheus();
  dir = await mkdtemp(join(tmpdir(), 'klr-prom-e2e-'));
  const rulesCopy = join(dir, 'kloros_canary.rules.yml');
  const rules = await testRules(rulesCopy);
  assert.ok(
    rules.groups.some((g) => g.rules.some((r) => r.alert === ALERT)),
    `${RULES_PATH} defines ${ALERT}`,
  );
  server = await startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  const [metricsPort, sdkPort] = [await pickFreePort(), await pickFreePort()];
  // Too aggressive: the first request OOMs (see docs/simulator.md).
  stack = await startScenario({
    host,
    temporalAddress: server.address,
    serving: { 'gpu-memory-utilization': 0.98, 'max-model-len': 8192, 'max-num-seqs': 256 },
    worker: {
      KLR_METRICS_ADDR: `127.0.0.1:${metricsPort}`,
      KLR_SDK_METRICS_ADDR: `127.0.0.1:${sdkPort}`,
    },
  });
  // The observer of the same host, reading the service's log from its first line. Its Temporal is a
  // port nothing listens on: every delivery fails to connect and its symptoms wait in its spool.
  const [observerMetricsPort, deadTemporalPort] = [await pickFreePort(), await pickFreePort()];
  observer = await startObserverProcess({
    KLR_HOST: host,
    KLR_DATA_DIR: join(dir, 'observer-data'),
    KLR_OBSERVER_FILE: stack.service.logPath,
    KLR_OBSERVER_FROM_START: '1',
    TEMPORAL_ADDRESS: `127.0.0.1:${deadTemporalPort}`,
    KLR_OBSERVER_DELIVERY_TIMEOUT: '1',
    KLR_HTTP_DOOR: '1',
    KLR_HTTP_DOOR_ADDR: '127.0.0.1:0',
    KLR_HTTP_DOOR_TOKEN: DOOR_TOKEN,
    KLR_OBSERVER_METRICS_ADDR: `127.0.0.1:${observerMetricsPort}`,
  });
  assert.equal(observer.metricsUrl, `http://127.0.0.1:${observerMetricsPort}/metrics`);
  assert.ok(observer.doorUrl, 'the observer opened its HTTP door');
  prometheus = await startPrometheus({
    targets: [
      { job: 'kloros-healing', target: `127.0.0.1:${metricsPort}`, labels: { host } },
      { job: 'kloros-temporal-sdk', target: `127.0.0.1:${sdkPort}`, labels: { host } },
      { job: 'kloros-observer', target: `127.0.0.1:${observerMetricsPort}`, labels: { host } },
    ],
    ruleFiles: [rulesCopy],
  });
  console.log(
    `prometheus ${prometheus.url} (pid ${prometheus.pid}); observer pid ${observer.pid}, door ${observer.doorUrl}; maintenance window ${stack.window} UTC, opens in ${Math.round((stack.windowOpensAt - Date.now()) / 1000)} s`,
  );
});

after(async () => {
  // The observer by its pid (SIGTERM, SIGKILL after the grace period), before its data directory goes.
  await observer?.stop();
  await prometheus?.stop();
  await stack?.stop();
  await connection?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const escalationAlerts = async (): Promise<PromAlert[]> =>
  (await prometheus!.alerts()).filter((a) => a.labels.alertname === ALERT);

/** The value of a one-sample instant query, or undefined while there is none. */
async function scalar(expr: string): Promise<number | undefined> {
  const r = await prometheus!.query(expr);
  const v = r.result as { value: [number, string] }[];
  return r.resultType === 'vector' && v.length === 1 ? Number(v[0]!.value[1]) : undefined;
}

async function sendSymptoms(from: number, to: number, details: Record<string, unknown>) {
  for (let i = from; i <= to; i++) {
    await recordSymptom(client, host, { kind, id: `prom:${host}:${i}`, source: 'prometheus-e2e', details });
  }
}

let details: ReturnType<typeof torchOomDetails>;
let firingAt = 0;

test('below the threshold the escalation alert stays quiet', async () => {
  assert.ok(stack && prometheus);
  await eventually(
    'Prometheus scraping the worker, the SDK endpoint and the observer',
    async () =>
      (await scalar(`up{job="kloros-healing"}`)) === 1 &&
      (await scalar(`up{job="kloros-temporal-sdk"}`)) === 1 &&
      (await scalar(`up{job="kloros-observer"}`)) === 1,
    60_000,
  );
  const res = await complete(stack.service.baseUrl);
  assert.equal(res.status, 500);
  const oomLine = await eventually('the OOM in the service log', async () => {
    const log = await readFile(stack!.service.logPath, 'utf8');
    return log.split('\n').find((l) => l.includes('CUDA out of memory'));
  });
  details = torchOomDetails(oomLine);
  await sendSymptoms(1, 2, details);
  await eventually(
    'Prometheus to see 2 symptoms and the flag at 0',
    async () =>
      (await scalar(`kloros_symptoms_total{kind="${kind}"}`)) === 2 &&
      (await scalar(`kloros_escalation_flag{kind="${kind}"}`)) === 0,
    60_000,
  );
  // Several evaluations (1 s apart) on those series.
  await delay(4_000);
  assert.deepEqual(await escalationAlerts(), []);
});

test('once armed, KLoROS_EscalationRequested goes pending, then firing', async () => {
  const armedAt = Date.now();
  await sendSymptoms(3, 3, details);
  const states = new Set<string>();
  const firing = await eventually(
    `${ALERT} firing`,
    async () => {
      const alerts = await escalationAlerts();
      for (const a of alerts) states.add(a.state);
      return alerts.find((a) => a.state === 'firing');
    },
    2 * MINUTE,
  );
  firingAt = Date.now();
  assert.ok(states.has('pending') || states.has('firing'));
  assert.equal(firing.labels.severity, 'warning');
  console.log(
    `${ALERT}: states seen ${[...states].join(' → ')}; firing ${firingAt - armedAt} ms after the 3rd symptom; labels ${JSON.stringify(firing.labels)}`,
  );
  const state = await healingState(client, host);
  assert.equal(state.armed, true);
});

test('after the promotion the alert resolves', async () => {
  assert.ok(stack);
  const promoted = await eventually(
    'a promoted canary',
    async () => {
      const s = await healingState(client, host);
      if (s.lastCanary && s.lastCanary.outcome !== 'promoted')
        throw new Error(`canary ${s.lastCanary.outcome}: ${s.lastCanary.reason}`);
      return s.lastCanary?.outcome === 'promoted' ? s : undefined;
    },
    4 * MINUTE + Math.max(0, stack.windowOpensAt - Date.now()),
  );
  const promotedAt = Date.now();
  await eventually('the alert resolved', async () => (await escalationAlerts()).length === 0, 2 * MINUTE);
  console.log(`${ALERT} resolved ${Date.now() - promotedAt} ms after the promotion was seen`);
  await eventually(
    'Prometheus to see the promotion',
    async () => (await scalar(`kloros_canary_runs_total{result="promoted",mode="canary"}`)) === 1,
    60_000,
  );
  assert.equal(await scalar(`kloros_canary_downtime_seconds_count`), 1);
  const sum = await scalar(`kloros_canary_downtime_seconds_sum`);
  assert.ok(sum !== undefined && Math.abs(sum - promoted.lastCanary!.downtimeMs / 1000) < 0.01, `sum ${sum}`);
  // The seed's gauge: the last canary's duration, start to promotion (longer than its downtime: soak, probe).
  const duration = await scalar('kloros_canary_duration_seconds');
  const c = promoted.lastCanary!;
  assert.ok(c.startedAt !== undefined);
  assert.ok(
    duration !== undefined && Math.abs(duration - (c.at - c.startedAt) / 1000) < 0.01,
    `duration ${duration}`,
  );
  assert.ok(duration >= c.downtimeMs / 1000);
  assert.ok(((await scalar('kloros_gpu_budget_seconds_remaining')) ?? 60) < 60, 'budget charged');
  assert.ok(((await scalar('kloros_gpu_canary_cooldown_seconds')) ?? 0) > 0, 'cooldown running');
});

test('the observer: the OOM it read from the service log, its spooled symptoms, failed deliveries and door answers reach Prometheus', async () => {
  assert.ok(observer?.doorUrl && prometheus);
  // Two requests to the door: one without the token, one symptom with it (spooled: Temporal is away).
  const refused = await fetch(`${observer.doorUrl}/v1/symptoms`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ kind, id: `door:${host}:1` }),
  });
  assert.equal(refused.status, 401);
  const accepted = await fetch(`${observer.doorUrl}/v1/symptoms`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${DOOR_TOKEN}` },
    body: JSON.stringify({ kind, id: `door:${host}:2`, source: 'prometheus-e2e' }),
  });
  assert.equal(accepted.status, 202);
  const answer = (await accepted.json()) as { accepted: boolean; delivered: boolean; spooled?: boolean };
  assert.deepEqual(
    { accepted: answer.accepted, delivered: answer.delivered, spooled: answer.spooled },
    { accepted: true, delivered: false, spooled: true },
  );
  const job = `job="kloros-observer", host="${host}"`;
  const seen: Record<string, number | undefined> = {};
  await eventually(
    "Prometheus to see the observer's incident, spooled symptoms, connection errors and door answers",
    async () => {
      const read = async (name: string, expr: string) => (seen[name] = await scalar(expr));
      const incidents = await read('incidents', `sum(kloros_observer_incidents_total{${job}})`);
      const oom = await read(
        'torch_oom',
        `kloros_observer_incidents_total{${job}, kind="${kind}", family="torch_oom"}`,
      );
      const spooled = await read('spooled', `kloros_observer_symptoms_spooled_total{${job}}`);
      const pending = await read('pending', `kloros_observer_spool_pending_symptoms{${job}}`);
      const delivered = await read('delivered', `kloros_observer_symptoms_delivered_total{${job}}`);
      const connect = await read(
        'connect',
        `kloros_observer_delivery_errors_total{${job}, reason="connect"}`,
      );
      const door401 = await read('door401', `kloros_observer_http_door_requests_total{${job}, code="401"}`);
      const door202 = await read('door202', `kloros_observer_http_door_requests_total{${job}, code="202"}`);
      const lines = await read('lines', `kloros_observer_lines_read_total{${job}, source="file"}`);
      return (
        incidents !== undefined &&
        (oom ?? 0) >= 1 &&
        // Every incident and the door's symptom spooled, none delivered: Temporal is unreachable.
        spooled === incidents + 1 &&
        pending === spooled &&
        delivered === 0 &&
        (connect ?? 0) >= 1 &&
        door401 === 1 &&
        door202 === 1 &&
        (lines ?? 0) > 0
      );
    },
    60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last seen ${JSON.stringify(seen)}`);
  });
  // None of it reached the healing workflow: its count is the test's own three symptoms.
  assert.equal(await scalar(`kloros_symptoms_total{job="kloros-healing", kind="${kind}"}`), 3);
  assert.equal(await scalar(`count(kloros_build_info{${job}})`), 1);
  console.log(`observer as Prometheus sees it: ${JSON.stringify(seen)}`);
});

test('every panel query of the Grafana dashboard returns data', async () => {
  assert.ok(prometheus);
  let dashboard: GrafanaDashboard;
  try {
    dashboard = JSON.parse(await readFile(DASHBOARD_PATH, 'utf8')) as GrafanaDashboard;
  } catch (err) {
    throw new Error(`${DASHBOARD_PATH}: cannot read the dashboard (issue 6, item 4): ${String(err)}`);
  }
  // Variables take a value Prometheus has for them (label_values), or their current/first option.
  const values: Record<string, string> = { ...BUILTIN_VALUES };
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type === 'datasource') continue;
    const lv = labelValuesQuery(v);
    if (lv) {
      const match = lv.metric ? `?match[]=${encodeURIComponent(lv.metric)}` : '';
      const res = await fetch(`${prometheus.url}/api/v1/label/${lv.label}/values${match}`);
      const body = (await res.json()) as { data: string[] };
      // A worker that was given no service name labels nothing with `service`: Grafana offers only All.
      if (lv.label === 'service' && body.data.length === 0) {
        values[v.name] = '.*';
        continue;
      }
      assert.ok(
        body.data.length > 0,
        `variable $${v.name}: no values for label_values(${lv.metric ?? ''}, ${lv.label})`,
      );
      values[v.name] = body.data.includes(host) ? host : body.data[0]!;
    } else {
      const current = v.current?.value;
      const value = Array.isArray(current) ? current[0] : current;
      values[v.name] = value && value !== '$__all' ? value : (v.options?.[0]?.value ?? '.*');
    }
    if (values[v.name] === '$__all' || values[v.name] === 'All') values[v.name] = '.*';
  }
  const queries = dashboardQueries(dashboard);
  assert.ok(
    queries.some((q) => q.source === 'panel'),
    'the dashboard has panel queries',
  );
  const empty: string[] = [];
  for (const q of queries) {
    const expr = substituteVariables(q.expr, values);
    assert.deepEqual(unresolvedVariables(expr), [], `${q.where}: variables left in ${expr}`);
    // Every query must be valid PromQL over exported names (query() throws on an error); panels
    // must show data. An annotation query is empty whenever no event falls in its interval.
    const r = await prometheus.query(expr);
    const hasData = r.resultType === 'scalar' || (Array.isArray(r.result) && r.result.length > 0);
    if (!hasData && q.source === 'panel') empty.push(`${q.where}: ${expr}`);
  }
  assert.deepEqual(empty, [], 'queries without data');
  console.log(
    `${queries.length} dashboard queries ran, every panel's with data (variables: ${JSON.stringify(values)})`,
  );
});
