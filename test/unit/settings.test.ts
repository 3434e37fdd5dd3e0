import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SettingsError, loadSettings } from '../../src/config/settings.js';
import { loadTemporalTarget } from '../../src/config/temporal-connection.js';

describe('settings', () => {
  test('defaults follow the design', () => {
    const s = loadSettings({ KLR_HOST: 'gpu-1', KLR_GPU_MAINTENANCE_TZ: 'Europe/Berlin' });
    assert.equal(s.host, 'gpu-1');
    assert.equal(s.policy.threshold24h, 3);
    assert.equal(s.policy.escalationFlagTtlSeconds, 14_400);
    assert.equal(s.policy.maintenanceWindow, '03:00-07:00');
    assert.equal(s.policy.maintenanceTimeZone, 'Europe/Berlin');
    assert.equal(s.policy.maxDowntimeSeconds, 60);
    assert.equal(s.policy.defaultMode, 'predictive');
    assert.equal(s.policy.cooldownHours, 6);
  });

  test('the zone defaults to the host zone', () => {
    const s = loadSettings({ KLR_HOST: 'gpu-1' });
    assert.equal(s.policy.maintenanceTimeZone, Intl.DateTimeFormat().resolvedOptions().timeZone);
  });

  test('values are read and converted', () => {
    const s = loadSettings({
      KLR_HOST: 'gpu-1',
      KLR_SYMPTOM_THRESHOLD_24H: '5',
      KLR_ESCALATION_FLAG_TTL: '0',
      KLR_GPU_MAINTENANCE_WINDOW: '22:00-02:00',
      KLR_GPU_MAINTENANCE_TZ: 'UTC',
      KLR_GPU_MAINTENANCE_MAX_DOWNTIME: '120',
      KLR_CANARY_MODE: 'canary',
      KLR_CANARY_COOLDOWN_HOURS: '0.5',
    });
    assert.equal(s.policy.threshold24h, 5);
    assert.equal(s.policy.escalationFlagTtlSeconds, 0);
    assert.equal(s.policy.maintenanceWindow, '22:00-02:00');
    assert.equal(s.policy.maxDowntimeSeconds, 120);
    assert.equal(s.policy.defaultMode, 'canary');
    assert.equal(s.policy.cooldownHours, 0.5);
  });

  test('hostile durations are refused, fast and without echoing them whole: 200 kB of digits, 100 000 units, 1e309, hex, full-width digits', () => {
    for (const value of [
      '1'.repeat(200_000) + 'x',
      '1h'.repeat(100_000),
      '9'.repeat(400) + 'd',
      '1e309s',
      '0x10',
      '-0',
      'NaN',
      '1\u00a0h',
      '\uff11h',
    ]) {
      assert.throws(
        () => loadSettings({ KLR_ESCALATION_FLAG_TTL: value }),
        (err: unknown) =>
          err instanceof SettingsError &&
          /^invalid setting KLR_ESCALATION_FLAG_TTL=.*: expected a duration/.test(err.message) &&
          err.message.length < 400,
        value.slice(0, 20),
      );
    }
  });

  test('durations take units, and bare numbers keep their old unit (seconds, or hours for the cooldown)', () => {
    const s = loadSettings({
      KLR_ESCALATION_FLAG_TTL: '4h',
      KLR_GPU_MAINTENANCE_MAX_DOWNTIME: '5m',
      KLR_CANARY_COOLDOWN_HOURS: '90m',
      KLR_CANARY_SOAK_SECONDS: '1m30s',
      KLR_CANARY_LEASE_TTL: '1h',
      KLR_PREDICT_INTERVAL: '0',
    });
    assert.equal(s.policy.escalationFlagTtlSeconds, 14_400);
    assert.equal(s.policy.maxDowntimeSeconds, 300);
    assert.equal(s.policy.cooldownHours, 1.5);
    assert.equal(s.policy.soakSeconds, 90);
    assert.equal(s.policy.leaseTtlSeconds, 3600);
    assert.equal(s.policy.predictIntervalSeconds, 0);
    assert.equal(loadSettings({ KLR_CANARY_COOLDOWN_HOURS: '2d' }).policy.cooldownHours, 48);
    assert.equal(loadSettings({ KLR_ESCALATION_FLAG_TTL: '600' }).policy.escalationFlagTtlSeconds, 600);
  });

  const bad: [Record<string, string>, RegExp][] = [
    [
      { KLR_SYMPTOM_THRESHOLD_24H: 'three' },
      /^invalid setting KLR_SYMPTOM_THRESHOLD_24H="three": expected a whole number of symptoms ≥ 1$/,
    ],
    [{ KLR_SYMPTOM_THRESHOLD_24H: '0' }, /KLR_SYMPTOM_THRESHOLD_24H="0"/],
    [{ KLR_SYMPTOM_THRESHOLD_24H: '-3' }, /KLR_SYMPTOM_THRESHOLD_24H="-3"/],
    [
      { KLR_ESCALATION_FLAG_TTL: '1.5' },
      /KLR_ESCALATION_FLAG_TTL="1.5": expected a duration such as 4h, 90m or 14400/,
    ],
    [
      { KLR_GPU_MAINTENANCE_WINDOW: '25:00-07:00' },
      /^invalid setting KLR_GPU_MAINTENANCE_WINDOW="25:00-07:00": expected HH:MM-HH:MM/,
    ],
    [{ KLR_GPU_MAINTENANCE_WINDOW: 'nightly' }, /KLR_GPU_MAINTENANCE_WINDOW="nightly"/],
    [
      { KLR_GPU_MAINTENANCE_TZ: 'Mars/Olympus' },
      /^invalid setting KLR_GPU_MAINTENANCE_TZ="Mars\/Olympus": expected an IANA time zone/,
    ],
    [{ KLR_GPU_MAINTENANCE_MAX_DOWNTIME: '0' }, /KLR_GPU_MAINTENANCE_MAX_DOWNTIME="0"/],
    [
      { KLR_CANARY_MODE: 'yolo' },
      /^invalid setting KLR_CANARY_MODE="yolo": expected "predictive" or "canary"$/,
    ],
    [{ KLR_CANARY_COOLDOWN_HOURS: '-1' }, /KLR_CANARY_COOLDOWN_HOURS="-1"/],
    [{ KLR_CANARY_COOLDOWN_HOURS: '6 hours' }, /KLR_CANARY_COOLDOWN_HOURS="6 hours": expected .* 6h or 90m/],
    [
      { KLR_GPU_MAINTENANCE_MAX_DOWNTIME: '1500ms' },
      /KLR_GPU_MAINTENANCE_MAX_DOWNTIME="1500ms": expected .*whole seconds/,
    ],
    [
      { KLR_GPU_MAINTENANCE_MAX_DOWNTIME: '25h' },
      /KLR_GPU_MAINTENANCE_MAX_DOWNTIME="25h": expected .*1s to 24h/,
    ],
    [{ KLR_CANARY_LEASE_TTL: '30s' }, /KLR_CANARY_LEASE_TTL="30s": expected .*1m to 24h/],
    [{ KLR_ESCALATION_FLAG_TTL: '4h-1m' }, /KLR_ESCALATION_FLAG_TTL="4h-1m"/],
    [{ KLR_HOST: '../etc' }, /^invalid setting KLR_HOST="..\/etc": expected a host name/],
    [{ KLR_HOST: 'gpu 1' }, /KLR_HOST="gpu 1"/],
    [{ KLR_LOG_LEVEL: 'loud' }, /KLR_LOG_LEVEL="loud"/],
  ];
  for (const [env, message] of bad) {
    test(`rejects ${JSON.stringify(env)} with one clear line`, () => {
      assert.throws(
        () => loadSettings({ KLR_HOST: 'gpu-1', ...env }),
        (err: unknown) =>
          err instanceof SettingsError && message.test(err.message) && !err.message.includes('\n'),
      );
    });
  }
});

describe('Temporal connection (envconfig conventions)', () => {
  test('defaults to the local dev server', () => {
    const t = loadTemporalTarget({ HOME: '/nonexistent' });
    assert.equal(t.address, '127.0.0.1:7233');
    assert.equal(t.namespace, 'default');
    assert.equal(t.tls, false);
  });

  test('TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and an API key (which turns TLS on)', () => {
    const t = loadTemporalTarget({
      HOME: '/nonexistent',
      TEMPORAL_ADDRESS: 'my-ns.a1b2c.tmprl.cloud:7233',
      TEMPORAL_NAMESPACE: 'my-ns.a1b2c',
      TEMPORAL_API_KEY: 'secret',
    });
    assert.equal(t.address, 'my-ns.a1b2c.tmprl.cloud:7233');
    assert.equal(t.namespace, 'my-ns.a1b2c');
    assert.equal(t.tls, true);
    assert.equal(t.connectionOptions.apiKey, 'secret');
  });

  test('a bad address is one clear line', () => {
    assert.throws(() => loadTemporalTarget({ HOME: '/nonexistent', TEMPORAL_ADDRESS: 'http://x y' }), {
      message: /^invalid setting TEMPORAL_ADDRESS=.*expected host:port/,
    });
  });
});
