// Bad input (issue 7, item 3): a table of malformed symptoms, settings and service configs through the
// real parsers. Each one is refused with a message that names the field (or variable) and says what is
// expected; none is accepted, none crashes. test/workflows/bad-input-workflow.test.ts sends the
// symptoms of this table to a real workflow.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSymptom } from '../../src/domain/symptom.js';
import { SettingsError, loadSettings } from '../../src/config/settings.js';
import { loadServiceSettings } from '../../src/service/service-settings.js';
import { ServingConfigError, parseServingConfig } from '../../src/service/vllm-config.js';
import { BAD_SYMPTOMS } from '../support/bad-symptoms.js';

describe('malformed symptoms are refused, naming the field and what is expected', () => {
  for (const [name, payload, message] of BAD_SYMPTOMS) {
    test(name, () => {
      const result = parseSymptom(payload);
      assert.equal(result.ok, false, `accepted: ${name}`);
      if (!result.ok) {
        assert.match(result.error, message);
        assert.ok(result.error.length < 600, 'one short line, whatever the payload size');
        assert.doesNotMatch(result.error, /\n/);
      }
    });
  }

  test('a 5 MB text is refused without echoing it', () => {
    const result = parseSymptom({ kind: 'vllm_oom', details: { text: 'x'.repeat(5 * 1024 * 1024) } });
    assert.deepEqual(result, { ok: false, error: 'details.text: expected at most 2000 characters' });
  });
});

const SERVICE_BASE = {
  KLR_SERVICE_CONFIG: '/etc/vllm/config.yaml',
  KLR_SERVICE_RESTART_CMD: '["systemctl","restart","vllm"]',
};

/** [what, environment, variable named, what is expected]. */
const BAD_SETTINGS: [string, Record<string, string>, string, RegExp][] = [
  [
    'NaN-like threshold',
    { KLR_SYMPTOM_THRESHOLD_24H: 'NaN' },
    'KLR_SYMPTOM_THRESHOLD_24H',
    /a whole number of symptoms ≥ 1/,
  ],
  ['zero threshold', { KLR_SYMPTOM_THRESHOLD_24H: '0' }, 'KLR_SYMPTOM_THRESHOLD_24H', /≥ 1/],
  ['negative threshold', { KLR_SYMPTOM_THRESHOLD_24H: '-3' }, 'KLR_SYMPTOM_THRESHOLD_24H', /≥ 1/],
  ['fractional threshold', { KLR_SYMPTOM_THRESHOLD_24H: '3.5' }, 'KLR_SYMPTOM_THRESHOLD_24H', /whole number/],
  ['exponent threshold', { KLR_SYMPTOM_THRESHOLD_24H: '1e3' }, 'KLR_SYMPTOM_THRESHOLD_24H', /whole number/],
  ['negative TTL', { KLR_ESCALATION_FLAG_TTL: '-1' }, 'KLR_ESCALATION_FLAG_TTL', /a duration such as 4h/],
  [
    'Infinity TTL',
    { KLR_ESCALATION_FLAG_TTL: 'Infinity' },
    'KLR_ESCALATION_FLAG_TTL',
    /a duration such as 4h/,
  ],
  [
    'window 25:00-26:00',
    { KLR_GPU_MAINTENANCE_WINDOW: '25:00-26:00' },
    'KLR_GPU_MAINTENANCE_WINDOW',
    /hour 25 is out of range 00-23/,
  ],
  [
    'window without an end',
    { KLR_GPU_MAINTENANCE_WINDOW: '03:00' },
    'KLR_GPU_MAINTENANCE_WINDOW',
    /HH:MM-HH:MM/,
  ],
  [
    'window of no length',
    { KLR_GPU_MAINTENANCE_WINDOW: '03:00-03:00' },
    'KLR_GPU_MAINTENANCE_WINDOW',
    /no length/,
  ],
  [
    'unknown time zone',
    { KLR_GPU_MAINTENANCE_TZ: 'Mars/Olympus' },
    'KLR_GPU_MAINTENANCE_TZ',
    /IANA time zone/,
  ],
  ['zero budget', { KLR_GPU_MAINTENANCE_MAX_DOWNTIME: '0' }, 'KLR_GPU_MAINTENANCE_MAX_DOWNTIME', /1s to 24h/],
  [
    'absurd budget',
    { KLR_GPU_MAINTENANCE_MAX_DOWNTIME: '1e9' },
    'KLR_GPU_MAINTENANCE_MAX_DOWNTIME',
    /1s to 24h/,
  ],
  ['unknown mode', { KLR_CANARY_MODE: 'yolo' }, 'KLR_CANARY_MODE', /"predictive" or "canary"/],
  [
    'negative cooldown',
    { KLR_CANARY_COOLDOWN_HOURS: '-1' },
    'KLR_CANARY_COOLDOWN_HOURS',
    /between canaries on one host as a duration/,
  ],
  [
    'cooldown in words',
    { KLR_CANARY_COOLDOWN_HOURS: 'six' },
    'KLR_CANARY_COOLDOWN_HOURS',
    /between canaries on one host as a duration/,
  ],
  ['host with ..', { KLR_HOST: '../etc' }, 'KLR_HOST', /a host name of 1-128 characters/],
  ['host with a space', { KLR_HOST: 'gpu 1' }, 'KLR_HOST', /a host name/],
  ['history limit too small', { KLR_HISTORY_EVENTS_LIMIT: '10' }, 'KLR_HISTORY_EVENTS_LIMIT', /200 to 50000/],
  ['lease TTL too short', { KLR_CANARY_LEASE_TTL: '5' }, 'KLR_CANARY_LEASE_TTL', /1m to 24h/],
  ['unknown log level', { KLR_LOG_LEVEL: 'loud' }, 'KLR_LOG_LEVEL', /one of fatal, error/],
];

const BAD_SERVICE_SETTINGS: [string, Record<string, string>, string, RegExp][] = [
  ['no config path', { KLR_SERVICE_CONFIG: '' }, 'KLR_SERVICE_CONFIG', /path of the vLLM YAML config/],
  [
    'restart command as a shell string',
    { KLR_SERVICE_RESTART_CMD: 'systemctl restart vllm; rm -rf /' },
    'KLR_SERVICE_RESTART_CMD',
    /JSON array of strings \(an argument list, never run through a shell\)/,
  ],
  [
    'empty restart command',
    { KLR_SERVICE_RESTART_CMD: '[]' },
    'KLR_SERVICE_RESTART_CMD',
    /non-empty JSON array of non-empty strings/,
  ],
  [
    'restart command with an empty word',
    { KLR_SERVICE_RESTART_CMD: '["a",""]' },
    'KLR_SERVICE_RESTART_CMD',
    /non-empty strings/,
  ],
  [
    'negative restart timeout',
    { KLR_SERVICE_RESTART_TIMEOUT: '-5' },
    'KLR_SERVICE_RESTART_TIMEOUT',
    /a duration such as 5m or 300 .*1s to 1h/,
  ],
  ['ftp service URL', { KLR_SERVICE_URL: 'ftp://x' }, 'KLR_SERVICE_URL', /http\(s\):\/\/host:port/],
  ['service URL with a query', { KLR_SERVICE_URL: 'http://x/?a=1' }, 'KLR_SERVICE_URL', /without a query/],
];

describe('bad settings stop with one line: the variable, the value and what is expected', () => {
  for (const [name, env, variable, expected] of BAD_SETTINGS) {
    test(name, () => {
      assert.throws(
        () => loadSettings(env),
        (err: unknown) => {
          assert.ok(err instanceof SettingsError);
          assert.equal(err.variable, variable);
          assert.ok(
            err.message.startsWith(`invalid setting ${variable}=${JSON.stringify(env[variable])}: expected `),
          );
          assert.match(err.message, expected);
          return true;
        },
      );
    });
  }
  for (const [name, env, variable, expected] of BAD_SERVICE_SETTINGS) {
    test(`service: ${name}`, () => {
      assert.throws(
        () => loadServiceSettings({ ...SERVICE_BASE, ...env }),
        (err: unknown) => {
          assert.ok(err instanceof SettingsError);
          assert.equal(err.variable, variable);
          assert.match(err.message, expected);
          return true;
        },
      );
    });
  }
});

/** [what, YAML text, what the message must say (file:line, key, expected)]. */
const BAD_CONFIGS: [string, string, RegExp][] = [
  [
    'a YAML list, not a map',
    '- a\n- b\n',
    /^c\.yaml:1: expected a mapping of vLLM options \(key: value\), got a list$/,
  ],
  ['a single value', 'just a string\n', /^c\.yaml:1: expected a mapping .* got a single value$/],
  ['broken YAML', 'gpu-memory-utilization: [0.9\n', /^c\.yaml:2:1: not valid YAML: /],
  ['tabs as indentation', '\t: x\n', /^c\.yaml:1:1: not valid YAML: Tabs/],
  [
    'a key twice',
    'max-num-seqs: 1\nmax-num-seqs: 2\n',
    /^c\.yaml:2:1: not valid YAML: Map keys must be unique/,
  ],
  [
    'one key in both spellings',
    'gpu_memory_utilization: 0.8\ngpu-memory-utilization: 0.9\n',
    /gpu-memory-utilization: the option is set twice/,
  ],
  [
    'utilization above 1',
    'gpu-memory-utilization: 1.5\n',
    /^c\.yaml:1: gpu-memory-utilization: expected a fraction of GPU memory in \(0, 1\], e\.g\. 0\.9, got 1\.5$/,
  ],
  ['negative utilization', 'gpu-memory-utilization: -0.1\n', /expected a fraction .* got -0\.1/],
  ['NaN utilization', 'gpu-memory-utilization: NaN\n', /expected a fraction .* got "NaN"/],
  [
    'negative max-model-len',
    'max-model-len: -5\n',
    /^c\.yaml:1: max-model-len: expected a whole number ≥ 1 \(or 32k \/ 32K\), got -5$/,
  ],
  [
    'absurd max-model-len',
    'max-model-len: 1e99\n',
    /^c\.yaml:1: max-model-len: expected a whole number ≥ 1 .*got 1e\+99$/,
  ],
  [
    'max-model-len in words',
    'max-model-len: lots\n',
    /max-model-len: expected a whole number ≥ 1 .*got "lots"/,
  ],
  ['zero GPUs', 'tensor-parallel-size: 0\n', /tensor-parallel-size: expected a whole number ≥ 1, got 0/],
  ['fractional sequences', 'max-num-seqs: 3.5\n', /max-num-seqs: expected a whole number ≥ 1, got 3\.5/],
  ['not a boolean', 'enforce-eager: maybe\n', /enforce-eager: expected true or false, got "maybe"/],
  [
    'unknown KV cache dtype',
    'kv-cache-dtype: fp4\n',
    /kv-cache-dtype: expected one of auto, fp8, fp8_e4m3, fp8_e5m2, got "fp4"/,
  ],
  ['empty model', 'model: ""\n', /model: expected a non-empty string, got ""/],
];

describe('broken service configs are refused with file, line, option and what is expected', () => {
  for (const [name, text, expected] of BAD_CONFIGS) {
    test(name, () => {
      assert.throws(
        () => parseServingConfig(text, 'c.yaml'),
        (err: unknown) => {
          assert.ok(err instanceof ServingConfigError, String(err));
          assert.match(err.message, expected);
          return true;
        },
      );
    });
  }
});

test('the table has at least 30 malformed inputs of each family together', () => {
  assert.ok(
    BAD_SYMPTOMS.length + BAD_SETTINGS.length + BAD_SERVICE_SETTINGS.length + BAD_CONFIGS.length >= 30,
  );
  assert.ok(BAD_SYMPTOMS.length >= 30);
});
