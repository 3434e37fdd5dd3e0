// KLR_METRICS_ADDR / KLR_SDK_METRICS_ADDR: IP:PORT or off, with one clear line when wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SettingsError } from '../../src/config/settings.js';
import {
  formatListenAddress,
  loadMetricsSettings,
  parseListenAddress,
} from '../../src/config/metrics-settings.js';

test('defaults: loopback 9464 for /metrics, 9465 for the SDK', () => {
  assert.deepEqual(loadMetricsSettings({}), {
    metrics: { host: '127.0.0.1', port: 9464 },
    sdkMetrics: { host: '127.0.0.1', port: 9465 },
    recheckSeconds: 600,
  });
});

test('KLR_METRICS_RECHECK: a duration with units or bare seconds; anything else names what is expected', () => {
  assert.equal(loadMetricsSettings({ KLR_METRICS_RECHECK: '90s' }).recheckSeconds, 90);
  assert.equal(loadMetricsSettings({ KLR_METRICS_RECHECK: '1h' }).recheckSeconds, 3600);
  assert.equal(loadMetricsSettings({ KLR_METRICS_RECHECK: '30' }).recheckSeconds, 30);
  for (const bad of ['0', '-5m', 'soon', '8d', '10 minutes'])
    assert.throws(
      () => loadMetricsSettings({ KLR_METRICS_RECHECK: bad }),
      (err: unknown) =>
        err instanceof SettingsError &&
        err.message.includes(`KLR_METRICS_RECHECK=${JSON.stringify(bad)}`) &&
        err.message.includes('a duration from 1s to 7d'),
      bad,
    );
});

test('addresses: IPv4, bracketed IPv6, off and 0', () => {
  assert.deepEqual(parseListenAddress('0.0.0.0:9100'), { host: '0.0.0.0', port: 9100 });
  assert.deepEqual(parseListenAddress('[::1]:9464'), { host: '::1', port: 9464 });
  assert.equal(formatListenAddress({ host: '::1', port: 9464 }), '[::1]:9464');
  assert.equal(parseListenAddress('off'), null);
  assert.equal(parseListenAddress('0'), null);
  for (const bad of [
    'localhost:9464',
    '9464',
    '127.0.0.1',
    '127.0.0.1:0',
    '127.0.0.1:70000',
    '::1:9464',
    '[127.0.0.1]:80',
  ])
    assert.equal(parseListenAddress(bad), undefined, bad);
});

test('a bad value names the variable, the value and what is expected', () => {
  assert.throws(
    () => loadMetricsSettings({ KLR_METRICS_ADDR: 'localhost:9464' }),
    (err: unknown) =>
      err instanceof SettingsError &&
      err.message.includes('KLR_METRICS_ADDR="localhost:9464"') &&
      err.message.includes('IP:PORT'),
  );
});

test('both on the same port is refused; off disables either', () => {
  assert.throws(
    () => loadMetricsSettings({ KLR_METRICS_ADDR: '0.0.0.0:9464', KLR_SDK_METRICS_ADDR: '127.0.0.1:9464' }),
    /KLR_SDK_METRICS_ADDR.*other than KLR_METRICS_ADDR/,
  );
  assert.deepEqual(loadMetricsSettings({ KLR_METRICS_ADDR: 'off', KLR_SDK_METRICS_ADDR: '0' }), {
    metrics: null,
    sdkMetrics: null,
    recheckSeconds: 600,
  });
});
