// The PromQL name scanner the rule and dashboard tests rely on: it must find every metric name and
// nothing else, or those tests could pass over a wrong name (or fail on a label).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PromqlScanError, exportedSeriesNames, metricNames, unknownNames } from '../support/promql-names.js';
import { METRICS } from '../../src/metrics/catalog.js';
import { BUILD_INFO } from '../../src/metrics/build-info.js';
import { OBSERVER_METRICS } from '../../src/observer/observer-metrics.js';

test('a bare selector and one with label matchers', () => {
  assert.deepEqual(metricNames('kloros_escalation_flag'), ['kloros_escalation_flag']);
  assert.deepEqual(metricNames('kloros_symptoms_total{kind=~"$kind", host="gpu-1", job!="x,y{z}"}'), [
    'kloros_symptoms_total',
  ]);
});

test('functions, aggregations, by/without and ranges with Grafana variables', () => {
  assert.deepEqual(
    metricNames('sum by (kind, host) (rate(kloros_symptoms_total{host=~"$host"}[$__rate_interval]))'),
    ['kloros_symptoms_total'],
  );
  assert.deepEqual(
    metricNames(
      'histogram_quantile(0.95, sum without (instance) (rate(kloros_canary_downtime_seconds_bucket[5m])))',
    ),
    ['kloros_canary_downtime_seconds_bucket'],
  );
  assert.deepEqual(metricNames('sum(increase(kloros_canary_runs_total[1h])) by (result, mode)'), [
    'kloros_canary_runs_total',
  ]);
});

test('binary operators with on/ignoring/group_left, bool, offset, subqueries and keywords', () => {
  const expr = `kloros_escalation_flag == 1
    and ignoring (kind) kloros_gpu_canary_cooldown_seconds == bool 0
    unless on (host) group_left (kind) kloros_restore_failure_latched offset 1h30m
    or count_over_time((kloros_gpu_maintenance_window_open == 1)[12h:1m]) > 1e3 * Inf
    or vector(0) and kloros_x @ end()`;
  assert.deepEqual(metricNames(expr), [
    'kloros_escalation_flag',
    'kloros_gpu_canary_cooldown_seconds',
    'kloros_restore_failure_latched',
    'kloros_gpu_maintenance_window_open',
    'kloros_x',
  ]);
});

test('string arguments, __name__ matchers and variables outside selectors are not names', () => {
  assert.deepEqual(
    metricNames(
      'label_replace(up_not_a_name_in_string_arg{a="b"}, "dst", "$1 by (x)", "src", "(.*)") or {__name__="kloros_canary_restore_fail_total"} * $scale',
    ),
    ['up_not_a_name_in_string_arg', 'kloros_canary_restore_fail_total'],
  );
  assert.deepEqual(metricNames('topk(5, count_values("value", kloros_escalation_flag))'), [
    'kloros_escalation_flag',
  ]);
});

test('unbalanced brackets and unterminated strings are errors, not silent passes', () => {
  assert.throws(() => metricNames('rate(kloros_symptoms_total{kind="a"[5m])'), PromqlScanError);
  assert.throws(() => metricNames('kloros_symptoms_total{kind="a}'), PromqlScanError);
});

test('only exported series pass: histogram only with its suffixes', () => {
  const exported = exportedSeriesNames(Object.values(METRICS));
  assert.ok(exported.includes('kloros_canary_downtime_seconds_bucket'));
  assert.ok(!exported.includes('kloros_canary_downtime_seconds'));
  assert.ok(exported.includes('kloros_canary_duration_seconds'), "the seed's gauge");
  assert.deepEqual(
    unknownNames(
      [
        'kloros_symptoms_total',
        'kloros_canary_downtime_seconds_sum',
        'kloros_canary_downtime_seconds',
        'kloros_symptom_total',
        'up',
      ],
      exported,
    ),
    ['kloros_canary_downtime_seconds', 'kloros_symptom_total', 'up'],
  );
});

test("time() is a function, not a name: the stale-figures alert reads only the worker's gauge", () => {
  const names = metricNames('time() - kloros_state_last_read_timestamp_seconds > 900');
  assert.deepEqual(names, ['kloros_state_last_read_timestamp_seconds']);
  assert.deepEqual(unknownNames(names, exportedSeriesNames(Object.values(METRICS))), []);
  assert.deepEqual(
    metricNames('time() - max by (host) (kloros_state_last_read_timestamp_seconds{host=~"$host"})'),
    ['kloros_state_last_read_timestamp_seconds'],
  );
});

test("the scrape alerts' up, and the observer's catalog with kloros_build_info", () => {
  assert.deepEqual(
    metricNames(`absent(up{job="kloros-healing"})
      or absent(up{job="kloros-temporal-sdk"})
      or absent(up{job="kloros-observer"})`),
    ['up'],
  );
  assert.deepEqual(metricNames('up{job=~"kloros-healing|kloros-observer"} == 0'), ['up']);
  const observer = exportedSeriesNames([...Object.values(OBSERVER_METRICS), BUILD_INFO]);
  assert.deepEqual(
    unknownNames(
      metricNames(
        'max by (host) (kloros_observer_spool_pending_bytes{host=~"$host"} / kloros_observer_spool_max_bytes{host=~"$host"}) or kloros_build_info',
      ),
      observer,
    ),
    [],
  );
  assert.deepEqual(unknownNames(['kloros_observer_lines_total', 'up'], observer), [
    'kloros_observer_lines_total',
    'up',
  ]);
});
