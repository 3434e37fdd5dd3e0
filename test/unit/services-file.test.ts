// The services file (KLR_SERVICES_FILE) and the one-service shortcut (KLR_SERVICE_*): every field's good and
// bad values, each refusal naming the file, the entry (index and name) and the field; duplicates; the worst
// payloads a file can hold (an alias bomb, megabytes, deep nesting, look-alike names); routing a symptom to a
// service; the workflow ids that name one (docs/deployment.md, "Several services on one host").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import {
  DEFAULT_SERVICE_NAME,
  MAX_SERVICES,
  MAX_SERVICES_FILE_BYTES,
  type ServiceSpec,
  loadServices,
  parseServicesFile,
  routeService,
  workflowService,
} from '../../src/service/services-file.js';
import {
  SERVICE_EXPECTED,
  healingWorkflowId,
  isValidService,
  parseHealingWorkflowId,
} from '../../src/domain/identifiers.js';

const REPO_ROOT = resolve(import.meta.dirname, '../..');
const SOURCE = '/etc/kloros-healing/services.yaml';
const DEFAULTS = {
  restartTimeoutMs: 60_000,
  backupDir: '/var/lib/kloros-healing/backups',
  baseDir: '/etc/kloros-healing',
};

/** What each field expects, as the error says it (src/service/services-file.ts FIELDS). */
const EXPECTED = {
  name: SERVICE_EXPECTED,
  config: 'the path of the vLLM YAML config the service runs with (vllm serve --config FILE)',
  restart:
    'the command that restarts the service, as a list of strings (never run through a shell), e.g. ["systemctl", "restart", "vllm@llama"]',
  restartTimeout: 'a duration such as 10m or 600 (bare numbers are seconds), 1s to 1h, whole seconds',
  url: "the service's base URL, http(s)://host:port without a query, e.g. http://127.0.0.1:8001",
  log: 'the service log: {file: PATH} or {command: [ARGV…]} (e.g. {command: ["journalctl", "-fu", "vllm@llama", "-o", "cat"]})',
  gpus: 'a list of GPUs as CUDA_VISIBLE_DEVICES names them: indices 0-1023 or UUIDs such as GPU-5f3c2a1e-8d4b-… (nvidia-smi -L), e.g. [0, 1] or "0,1"',
  model:
    'the model name the canary probe asks for (leave it out for the config’s served-model-name or model)',
  modelProfile: 'the path of a model profile file (docs/prediction.md)',
  legacyIds: 'true or false: whether this service continues the workflows of a single-service release',
} as const;
const TOP_EXPECTED = `services file ${SOURCE}: expected a mapping with "services:", a list of 1-64 entries (docs/deployment.md)`;

/** A valid entry for service `name` on GPU `i` (port 8000 + i). */
function entry(name: string, i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    config: `/etc/vllm/${name}.yaml`,
    restart: ['systemctl', 'restart', `vllm@${name}`],
    url: `http://127.0.0.1:${8000 + i}`,
    gpus: [i],
    ...extra,
  };
}

const file = (...entries: unknown[]) => stringify({ services: entries });
const parse = (text: string) => parseServicesFile(text, SOURCE, DEFAULTS);

/** The text with `field` of the second entry ("mistral") set to `value` (undefined: left out). */
function withField(field: string, value: unknown): string {
  const second = entry('mistral', 1);
  if (value === undefined) delete second[field];
  else second[field] = value;
  return file(entry('llama', 0), second);
}

function refused(text: string, message: string | RegExp) {
  assert.throws(() => parse(text), { name: 'ServicesFileError', message });
}

// ---- a whole file

test('a two-service file: every field as the adapter and the observer need it', () => {
  const specs = parse(
    file(
      entry('llama-70b', 0, {
        gpus: [0, 1, 2, 3],
        restartTimeout: '10m',
        log: { command: ['journalctl', '-fu', 'vllm@llama-70b', '-o', 'cat'] },
        model: 'meta-llama/Llama-3.1-70B-Instruct',
        modelProfile: 'profiles/llama-70b.yaml',
        legacyIds: true,
      }),
      entry('qwen-32b', 4, { gpus: '4,5,6,7', log: '/var/log/vllm/qwen-32b.log', config: 'vllm/qwen.yaml' }),
    ),
  );
  assert.deepEqual(specs, [
    {
      name: 'llama-70b',
      settings: {
        configPath: '/etc/vllm/llama-70b.yaml',
        restartCommand: ['systemctl', 'restart', 'vllm@llama-70b'],
        restartTimeoutMs: 600_000,
        baseUrl: 'http://127.0.0.1:8000',
        logPath: null,
        model: 'meta-llama/Llama-3.1-70B-Instruct',
        // The legacy service keeps the backups of its single-service release.
        backupDir: '/var/lib/kloros-healing/backups',
      },
      log: { command: ['journalctl', '-fu', 'vllm@llama-70b', '-o', 'cat'] },
      gpus: [0, 1, 2, 3],
      modelProfilePath: '/etc/kloros-healing/profiles/llama-70b.yaml',
      legacyIds: true,
    },
    {
      name: 'qwen-32b',
      settings: {
        configPath: '/etc/kloros-healing/vllm/qwen.yaml',
        restartCommand: ['systemctl', 'restart', 'vllm@qwen-32b'],
        restartTimeoutMs: 60_000,
        baseUrl: 'http://127.0.0.1:8004',
        logPath: '/var/log/vllm/qwen-32b.log',
        model: null,
        backupDir: '/var/lib/kloros-healing/backups/qwen-32b',
      },
      log: { file: '/var/log/vllm/qwen-32b.log' },
      gpus: [4, 5, 6, 7],
      modelProfilePath: null,
      legacyIds: false,
    },
  ]);
});

test('the example services file of deploy/ parses: an 8-GPU host', async () => {
  const path = join(REPO_ROOT, 'deploy/services.example.yaml');
  const specs = parseServicesFile(await readFile(path, 'utf8'), path, DEFAULTS);
  assert.ok(specs.length >= 2, 'at least two services');
  const gpus = specs.flatMap((s) => s.gpus ?? []);
  assert.ok(
    gpus.every((g) => typeof g === 'number' && g >= 0 && g < 8),
    `GPUs of an 8-GPU host: ${String(gpus)}`,
  );
  assert.equal(new Set(gpus).size, gpus.length, 'no GPU given to two services');
  assert.ok(specs.filter((s) => s.legacyIds).length <= 1);
});

test('every services file shown in the docs parses', async () => {
  let shown = 0;
  for (const doc of ['docs/deployment.md', 'docs/configuration.md']) {
    const text = await readFile(join(REPO_ROOT, doc), 'utf8');
    for (const [, yaml] of text.matchAll(/```yaml\n(services:\n[\s\S]*?)```/g)) {
      shown++;
      assert.doesNotThrow(() => parseServicesFile(yaml!, doc, DEFAULTS), `${doc}:\n${yaml}`);
    }
  }
  assert.ok(shown >= 4, `${shown} services files in the docs`);
});

// ---- each field: the values it takes

const GOOD: [string, unknown, (s: ServiceSpec) => unknown, unknown][] = [
  ['name', 'a', (s) => s.name, 'a'],
  ['name', '0', (s) => s.name, '0'],
  ['name', 'llama-3-1-70b', (s) => s.name, 'llama-3-1-70b'],
  ['name', 'x'.repeat(63), (s) => s.name, 'x'.repeat(63)],
  ['config', '/etc/vllm/m.yaml', (s) => s.settings.configPath, '/etc/vllm/m.yaml'],
  ['config', 'm.yaml', (s) => s.settings.configPath, '/etc/kloros-healing/m.yaml'],
  ['config', '../vllm/m.yaml', (s) => s.settings.configPath, '/etc/vllm/m.yaml'],
  ['config', '/etc/vllm/./x/../m.yaml', (s) => s.settings.configPath, '/etc/vllm/m.yaml'],
  [
    'restart',
    ['docker', 'restart', 'vllm-m'],
    (s) => s.settings.restartCommand,
    ['docker', 'restart', 'vllm-m'],
  ],
  ['restart', ['/usr/local/bin/restart-m'], (s) => s.settings.restartCommand, ['/usr/local/bin/restart-m']],
  ['restart', ['sh', '-c', 'a && b'], (s) => s.settings.restartCommand, ['sh', '-c', 'a && b']],
  ['restartTimeout', undefined, (s) => s.settings.restartTimeoutMs, 60_000],
  ['restartTimeout', '10m', (s) => s.settings.restartTimeoutMs, 600_000],
  ['restartTimeout', 600, (s) => s.settings.restartTimeoutMs, 600_000],
  ['restartTimeout', '600', (s) => s.settings.restartTimeoutMs, 600_000],
  ['restartTimeout', '1s', (s) => s.settings.restartTimeoutMs, 1_000],
  ['restartTimeout', '1h', (s) => s.settings.restartTimeoutMs, 3_600_000],
  ['restartTimeout', '2m30s', (s) => s.settings.restartTimeoutMs, 150_000],
  ['url', 'http://127.0.0.1:8001', (s) => s.settings.baseUrl, 'http://127.0.0.1:8001'],
  ['url', 'http://127.0.0.1:8001/', (s) => s.settings.baseUrl, 'http://127.0.0.1:8001'],
  ['url', 'https://vllm-m.internal:8443', (s) => s.settings.baseUrl, 'https://vllm-m.internal:8443'],
  ['url', 'http://gw.internal/m/', (s) => s.settings.baseUrl, 'http://gw.internal/m'],
  ['log', undefined, (s) => [s.log, s.settings.logPath], [null, null]],
  [
    'log',
    '/var/log/m.log',
    (s) => [s.log, s.settings.logPath],
    [{ file: '/var/log/m.log' }, '/var/log/m.log'],
  ],
  ['log', 'm.log', (s) => s.settings.logPath, '/etc/kloros-healing/m.log'],
  ['log', { file: '/var/log/m.log' }, (s) => s.log, { file: '/var/log/m.log' }],
  [
    'log',
    { command: ['docker', 'logs', '-f', '--since', '0s', 'vllm-m'] },
    (s) => [s.log, s.settings.logPath],
    [{ command: ['docker', 'logs', '-f', '--since', '0s', 'vllm-m'] }, null],
  ],
  ['gpus', [1], (s) => s.gpus, [1]],
  ['gpus', [0, 1, 2, 3], (s) => s.gpus, [0, 1, 2, 3]],
  ['gpus', '4,5,6,7', (s) => s.gpus, [4, 5, 6, 7]],
  ['gpus', ' 4 , 5 ', (s) => s.gpus, [4, 5]],
  ['gpus', '3', (s) => s.gpus, [3]],
  ['gpus', ['1', 2], (s) => s.gpus, [1, 2]],
  ['gpus', [1023], (s) => s.gpus, [1023]],
  [
    'gpus',
    ['GPU-5f3c2a1e-8d4b-4c5d-9e6f-0a1b2c3d4e5f'],
    (s) => s.gpus,
    ['GPU-5f3c2a1e-8d4b-4c5d-9e6f-0a1b2c3d4e5f'],
  ],
  [
    'gpus',
    'MIG-5f3c2a1e-8d4b-4c5d-9e6f-0a1b2c3d4e5f,MIG-6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d',
    (s) => s.gpus,
    ['MIG-5f3c2a1e-8d4b-4c5d-9e6f-0a1b2c3d4e5f', 'MIG-6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d'],
  ],
  // The MIG form of drivers before R470: MIG-GPU-<uuid>/<GPU instance>/<compute instance>.
  [
    'gpus',
    ['MIG-GPU-5f3c2a1e-8d4b-4c5d-9e6f-0a1b2c3d4e5f/1/0'],
    (s) => s.gpus,
    ['MIG-GPU-5f3c2a1e-8d4b-4c5d-9e6f-0a1b2c3d4e5f/1/0'],
  ],
  ['model', undefined, (s) => s.settings.model, null],
  [
    'model',
    'mistralai/Mistral-7B-Instruct-v0.3',
    (s) => s.settings.model,
    'mistralai/Mistral-7B-Instruct-v0.3',
  ],
  ['model', '  m  ', (s) => s.settings.model, 'm'],
  ['modelProfile', undefined, (s) => s.modelProfilePath, null],
  ['modelProfile', '/etc/kloros-healing/m.yaml', (s) => s.modelProfilePath, '/etc/kloros-healing/m.yaml'],
  ['modelProfile', 'profiles/m.yaml', (s) => s.modelProfilePath, '/etc/kloros-healing/profiles/m.yaml'],
  [
    'legacyIds',
    undefined,
    (s) => [s.legacyIds, s.settings.backupDir],
    [false, '/var/lib/kloros-healing/backups/mistral'],
  ],
  [
    'legacyIds',
    false,
    (s) => [s.legacyIds, s.settings.backupDir],
    [false, '/var/lib/kloros-healing/backups/mistral'],
  ],
  ['legacyIds', true, (s) => [s.legacyIds, s.settings.backupDir], [true, '/var/lib/kloros-healing/backups']],
];

for (const [field, value, read, expected] of GOOD) {
  test(`${field}: ${JSON.stringify(value) ?? 'left out'} is taken`, () => {
    const specs = parse(withField(field, value));
    assert.equal(specs.length, 2);
    assert.deepEqual(read(specs[1]!), expected);
  });
}

// ---- each field: the values it refuses, each error naming file, entry and field

const BAD: [string, unknown][] = [
  ['name', undefined],
  ['name', ''],
  ['name', '../x'],
  ['name', 'x/y'],
  ['name', 'Llama'],
  ['name', 'llama_70b'],
  ['name', 'llama.70b'],
  ['name', 'llama 70b'],
  ['name', '-llama'],
  ['name', 'llama-'],
  ['name', 'x'.repeat(64)],
  ['name', 'llama\n'],
  ['name', 7],
  ['name', null],
  ['name', ['llama']],
  ['config', undefined],
  ['config', ''],
  ['config', '   '],
  ['config', 5],
  ['config', ['/etc/vllm/m.yaml']],
  ['restart', undefined],
  // A shell string is never split or run through a shell: the list form is asked for.
  ['restart', 'systemctl restart vllm@mistral'],
  ['restart', 'docker restart vllm-m && echo ok'],
  ['restart', []],
  ['restart', ['']],
  ['restart', ['systemctl', 5]],
  ['restart', ['systemctl', null]],
  ['restart', Array.from({ length: 257 }, () => 'x')],
  ['restart', { command: ['systemctl'] }],
  ['restartTimeout', 0],
  ['restartTimeout', '0s'],
  ['restartTimeout', '2h'],
  ['restartTimeout', 3601],
  ['restartTimeout', 1.5],
  ['restartTimeout', '90ms'],
  ['restartTimeout', 'ten minutes'],
  ['restartTimeout', -1],
  ['restartTimeout', null],
  ['restartTimeout', true],
  ['url', undefined],
  ['url', ''],
  ['url', 'ftp://127.0.0.1:8001'],
  ['url', '127.0.0.1:8001'],
  ['url', 'localhost:8001'],
  ['url', 'http://127.0.0.1:8001/?a=1'],
  ['url', 'http://127.0.0.1:8001/#x'],
  ['url', 'file:///etc/passwd'],
  ['url', 8001],
  ['log', ''],
  ['log', null],
  ['log', 5],
  ['log', {}],
  ['log', { file: '' }],
  ['log', { path: '/var/log/m.log' }],
  ['log', { file: '/var/log/m.log', command: ['journalctl'] }],
  ['log', { command: 'journalctl -fu vllm@mistral' }],
  ['log', { command: [] }],
  ['log', ['/var/log/m.log']],
  ['gpus', undefined],
  ['gpus', []],
  ['gpus', ''],
  ['gpus', [-1]],
  ['gpus', [1024]],
  ['gpus', [1.5]],
  ['gpus', '0;1'],
  ['gpus', '0,,1'],
  ['gpus', 'all'],
  ['gpus', ['GPU-xyz']],
  ['gpus', ['gpu-5f3c2a1e']],
  ['gpus', ['GPU-5f3c2a1e/1/0/2']],
  ['gpus', 1],
  ['gpus', null],
  ['gpus', { 0: true }],
  ['model', ''],
  ['model', '   '],
  ['model', 'm'.repeat(513)],
  ['model', null],
  ['model', ['m']],
  ['modelProfile', ''],
  ['modelProfile', null],
  ['modelProfile', 3],
  ['legacyIds', 'true'],
  ['legacyIds', 'yes'],
  ['legacyIds', 1],
  ['legacyIds', null],
];

for (const [field, value] of BAD) {
  test(`${field}: ${JSON.stringify(value) ?? 'left out'} is refused, naming the file, the entry and the field`, () => {
    // The entry is named by its index, and by its name where it has one that is a string.
    const shown =
      field !== 'name'
        ? ' ("mistral")'
        : typeof value === 'string'
          ? ` (${JSON.stringify(value.slice(0, 80))})`
          : '';
    refused(
      withField(field, value),
      `services file ${SOURCE}: services[1]${shown}: field "${field}": expected ${EXPECTED[field as keyof typeof EXPECTED]}`,
    );
  });
}

test('gpus: a GPU listed twice is refused, saying so', () => {
  for (const gpus of [[0, 0], '1,1', ['1', 1]])
    refused(
      withField('gpus', gpus),
      `services file ${SOURCE}: services[1] ("mistral"): field "gpus" (a GPU is listed twice): expected ${EXPECTED.gpus}`,
    );
});

test('two services may share a GPU (two small models, each with its own gpu-memory-utilization)', () => {
  const specs = parse(file(entry('a', 0), entry('b', 1, { gpus: [0] })));
  assert.deepEqual(
    specs.map((s) => s.gpus),
    [[0], [0]],
  );
});

test('an anchor and its alias are ordinary YAML and taken', () => {
  const text = [
    'services:',
    '  - name: a',
    '    config: /etc/vllm/a.yaml',
    '    restart: [systemctl, restart, vllm@a]',
    '    url: http://127.0.0.1:8001',
    '    gpus: &half [0, 1, 2, 3]',
    '    restartTimeout: &slow 15m',
    '  - name: b',
    '    config: /etc/vllm/b.yaml',
    '    restart: [systemctl, restart, vllm@b]',
    '    url: http://127.0.0.1:8002',
    '    gpus: *half',
    '    restartTimeout: *slow',
  ].join('\n');
  assert.deepEqual(
    parse(text).map((s) => [s.gpus, s.settings.restartTimeoutMs]),
    [
      [[0, 1, 2, 3], 900_000],
      [[0, 1, 2, 3], 900_000],
    ],
  );
});

// ---- unknown fields, shapes that are not a services file

test('an unknown field of an entry is refused by name, with the fields there are', () => {
  const only = `expected only ${Object.keys(EXPECTED).join(', ')}`;
  refused(
    withField('restart_timeout', '5m'),
    `services file ${SOURCE}: services[1] ("mistral"): unknown field "restart_timeout": ${only}`,
  );
  refused(
    file(entry('a', 0), { ...entry('b', 1), port: 8001, tp: 4 }),
    `services file ${SOURCE}: services[1] ("b"): unknown field "port", "tp": ${only}`,
  );
  refused(
    withField('log', { file: '/var/log/m.log', follow: true }),
    `services file ${SOURCE}: services[1] ("mistral"): field "log": expected ${EXPECTED.log}`,
  );
});

test('an entry that is not a mapping is refused, naming the fields an entry has', () => {
  const mapping =
    'expected a mapping of the fields name, config, restart, url and gpus (and optionally restartTimeout, log, model, modelProfile, legacyIds)';
  for (const [what, value] of [
    ['a number', 5],
    ['a string', 'llama'],
    ['null', null],
    ['a list', [entry('a', 0)]],
  ] as const)
    assert.throws(
      () => parse(file(entry('a', 0), value)),
      {
        name: 'ServicesFileError',
        message: `services file ${SOURCE}: services[1]: ${mapping}`,
      },
      what,
    );
});

test('a file that is not a mapping with services: 1-64 entries is refused as a whole', () => {
  for (const text of [
    '',
    '\n\n',
    '# only a comment\n',
    'services:\n',
    'services: []\n',
    'services: {}\n',
    'services: llama\n',
    '- name: llama\n',
    'llama\n',
    'service:\n  - name: llama\n',
    `${file(entry('a', 0))}version: 1\n`,
  ])
    refused(text, TOP_EXPECTED);
});

test('not YAML, or a key given twice, is refused as YAML with the parser’s reason', () => {
  refused('services: [\n', new RegExp(`^services file ${SOURCE}: not valid YAML \\(`));
  refused(
    'services:\n  - name: a\n    name: b\n',
    `services file ${SOURCE}: not valid YAML (Map keys must be unique)`,
  );
  refused('services:\n\t- name: a\n', new RegExp(`^services file ${SOURCE}: not valid YAML \\(`));
});

test(`${MAX_SERVICES} services are taken, ${MAX_SERVICES + 1} refused`, () => {
  const many = (n: number) =>
    file(...Array.from({ length: n }, (_, i) => entry(`s${i}`, i, { gpus: [i % 8] })));
  assert.equal(parse(many(MAX_SERVICES)).length, MAX_SERVICES);
  refused(many(MAX_SERVICES + 1), TOP_EXPECTED);
});

// ---- duplicates

test('two services with one name are refused', () => {
  refused(
    file(entry('llama', 0), entry('llama', 1, { config: '/etc/vllm/other.yaml' })),
    `services file ${SOURCE}: services "llama" and "llama" have the same name (llama); each service needs its own`,
  );
});

test('two services with one config file are refused, however the path is spelt', () => {
  for (const spelling of ['/etc/vllm/a.yaml', '/etc/vllm/./a.yaml', '/etc/vllm//a.yaml', '../vllm/a.yaml'])
    refused(
      file(entry('a', 0), entry('b', 1, { config: spelling })),
      `services file ${SOURCE}: services "a" and "b" have the same config file (/etc/vllm/a.yaml); each service needs its own`,
    );
});

test('two services with one URL are refused, however the URL is spelt', () => {
  for (const [first, second] of [
    ['http://127.0.0.1:8001', 'http://127.0.0.1:8001/'],
    ['http://127.0.0.1:8001', 'HTTP://127.0.0.1:8001'],
    ['http://vllm.internal:8001', 'http://VLLM.internal:8001'],
    ['http://127.0.0.1:80', 'http://127.0.0.1'],
    ['https://127.0.0.1:443/', 'https://127.0.0.1'],
  ])
    refused(
      file(entry('a', 0, { url: first }), entry('b', 1, { url: second })),
      new RegExp(
        `^services file ${SOURCE}: services "a" and "b" have the same URL \\(.+\\); each service needs its own$`,
      ),
    );
});

test('two legacyIds services are refused: only one can continue the single-service workflows', () => {
  refused(
    file(entry('a', 0, { legacyIds: true }), entry('b', 1), entry('c', 2, { legacyIds: true })),
    `services file ${SOURCE}: legacyIds is true on "a" and "c"; at most one service can continue the single-service workflows`,
  );
});

// ---- the worst a file can hold

test('a YAML alias bomb (billion laughs) is refused at once, never expanded', () => {
  let text = 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n';
  for (let i = 1; i <= 9; i++)
    text += `l${i}: &l${i} [${Array(9)
      .fill(`*l${i - 1}`)
      .join(', ')}]\n`;
  const started = performance.now();
  refused(
    `${text}services: *l9\n`,
    `services file ${SOURCE}: not usable YAML (Excessive alias count indicates a resource exhaustion attack)`,
  );
  // The same bomb inside an entry's field.
  refused(
    `${text}services:\n  - name: a\n    model: *l9\n`,
    `services file ${SOURCE}: not usable YAML (Excessive alias count indicates a resource exhaustion attack)`,
  );
  const ms = performance.now() - started;
  assert.ok(ms < 2_000, `refused in ${Math.round(ms)} ms`);
});

test('a 5 MB file is refused before it is parsed', () => {
  const tooLarge = `services file ${SOURCE}: larger than 256 KiB; expected a list of at most 64 short entries (docs/deployment.md)`;
  const one = (i: number) =>
    `  - {name: s${i}, config: /etc/vllm/s${i}.yaml, restart: [systemctl, restart, vllm@s${i}], url: "http://127.0.0.1:${8000 + i}", gpus: [${i % 8}]}\n`;
  // Entries, a comment, one long value, one long name: all refused alike.
  const texts = [
    `services:\n${Array.from({ length: 45_000 }, (_, i) => one(i)).join('')}`,
    `services:\n${one(0)}#${'x'.repeat(5_000_000)}\n`,
    `services:\n  - name: a\n    model: ${'m'.repeat(5_000_000)}\n`,
    `services:\n  - name: ${'x'.repeat(5_000_000)}\n`,
    // Multi-byte characters count as the bytes they take.
    `services:\n${one(0)}#${'€'.repeat(MAX_SERVICES_FILE_BYTES / 3 + 1)}\n`,
  ];
  assert.ok(texts[0]!.length > 5_000_000);
  const started = performance.now();
  for (const text of texts) refused(text, tooLarge);
  const ms = performance.now() - started;
  assert.ok(ms < 3_000, `refused in ${Math.round(ms)} ms`);
  // Just under the limit is parsed.
  const padded = `${file(entry('a', 0))}#${'x'.repeat(MAX_SERVICES_FILE_BYTES - 400)}\n`;
  assert.ok(Buffer.byteLength(padded) <= MAX_SERVICES_FILE_BYTES);
  assert.equal(parse(padded).length, 1);
});

test('deeply nested YAML is refused, not a crash and not a hang', () => {
  const started = performance.now();
  const notYaml = new RegExp(`^services file ${SOURCE}: not valid YAML \\(.+\\)$`);
  for (const [text, message] of [
    [`services: ${'['.repeat(50_000)}${']'.repeat(50_000)}\n`, notYaml],
    [`services: ${'['.repeat(100_000)}\n`, notYaml],
    [`services: ${'{a: '.repeat(20_000)}1${'}'.repeat(20_000)}\n`, notYaml],
    // Block nesting that the parser can hold: a list where an entry should be.
    [
      `services:\n${Array.from({ length: 300 }, (_, i) => `${' '.repeat(2 * i + 2)}- `).join('\n')}x\n`,
      new RegExp(`^services file ${SOURCE}: services\\[0\\]: expected a mapping of the fields`),
    ],
  ] as const)
    refused(text, message);
  const ms = performance.now() - started;
  // Seconds at most even on a busy 2-core machine (about 1 s there): the size limit bounds the parse.
  assert.ok(ms < 15_000, `refused in ${Math.round(ms)} ms`);
});

test('a name "../x" is refused: no backup directory or workflow id can leave its place', () => {
  for (const name of ['../x', '..', '.', 'x/../../etc', '/etc', 'a\\b'])
    refused(
      file(entry(name, 0)),
      `services file ${SOURCE}: services[0] (${JSON.stringify(name)}): field "name": expected ${SERVICE_EXPECTED}`,
    );
});

test('unicode look-alike names are refused, and the error shows the odd character', () => {
  const names: [string, string][] = [
    ['ll\u0430ma', 'll\\u0430ma'], // Cyrillic a
    ['\u217clama', '\\u217clama'], // small roman numeral fifty
    ['\uff4c\uff4c\uff41\uff4d\uff41', '\\uff4c\\uff4c\\uff41\\uff4d\\uff41'], // fullwidth
    ['lla\u200bma', 'lla\\u200bma'], // zero-width space
    ['llama\u0301', 'llama\\u0301'], // combining acute accent
    ['llama\u00a0', 'llama\\u00a0'], // no-break space
    ['ll\u0131ma', 'll\\u0131ma'], // dotless i
  ];
  for (const [name, shown] of names) {
    assert.equal(isValidService(name), false, name);
    refused(
      file(entry(name, 0)),
      `services file ${SOURCE}: services[0] ("${shown}"): field "name": expected ${SERVICE_EXPECTED}`,
    );
  }
});

test('a long bad name is shown cut at 80 characters', () => {
  const name = `${'x'.repeat(100)}_`;
  refused(
    file(entry(name, 0)),
    `services file ${SOURCE}: services[0] ("${'x'.repeat(80)}"): field "name": expected ${SERVICE_EXPECTED}`,
  );
});

// ---- loadServices: the file on disk, the shortcut, and the two together

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'klr-services-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('loadServices reads KLR_SERVICES_FILE: paths relative to the file, defaults from the environment', () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'services.yaml');
    await writeFile(
      path,
      file(
        entry('llama', 0, { config: 'llama.yaml', log: 'logs/llama.log', legacyIds: true }),
        entry('qwen', 4, { restartTimeout: '2m' }),
      ),
    );
    const specs = loadServices({
      KLR_SERVICES_FILE: path,
      KLR_SERVICE_RESTART_TIMEOUT: '5m',
      KLR_BACKUP_DIR: join(dir, 'backups'),
    });
    assert.deepEqual(
      specs.map((s) => [
        s.name,
        s.settings.configPath,
        s.settings.logPath,
        s.settings.restartTimeoutMs,
        s.settings.backupDir,
      ]),
      [
        ['llama', join(dir, 'llama.yaml'), join(dir, 'logs/llama.log'), 300_000, join(dir, 'backups')],
        ['qwen', '/etc/vllm/qwen.yaml', null, 120_000, join(dir, 'backups', 'qwen')],
      ],
    );
    // KLR_SERVICE_NAME does not rename a file's services.
    assert.deepEqual(
      loadServices({ KLR_SERVICES_FILE: path, KLR_SERVICE_NAME: 'other' }).map((s) => s.name),
      ['llama', 'qwen'],
    );
  }));

test('loadServices: an error names the file as it was resolved', () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'services.yaml');
    await writeFile(path, file(entry('llama', 0, { url: 'localhost:8000' })));
    assert.throws(() => loadServices({ KLR_SERVICES_FILE: ` ${path} ` }), {
      name: 'ServicesFileError',
      message: `services file ${path}: services[0] ("llama"): field "url": expected ${EXPECTED.url}`,
    });
  }));

test('loadServices: a file that cannot be read is refused with the reason', () =>
  withTempDir(async (dir) => {
    const missing = join(dir, 'missing.yaml');
    assert.throws(() => loadServices({ KLR_SERVICES_FILE: missing }), {
      name: 'ServicesFileError',
      message: `services file ${missing} (KLR_SERVICES_FILE): cannot be read (ENOENT)`,
    });
    const folder = join(dir, 'folder');
    await mkdir(folder);
    assert.throws(() => loadServices({ KLR_SERVICES_FILE: folder }), {
      name: 'ServicesFileError',
      message: `services file ${folder} (KLR_SERVICES_FILE): cannot be read (EISDIR)`,
    });
  }));

test(
  'loadServices: a file the user may not read is refused (EACCES)',
  { skip: process.getuid?.() === 0 ? 'root reads every file' : false },
  () =>
    withTempDir(async (dir) => {
      const path = join(dir, 'services.yaml');
      await writeFile(path, file(entry('llama', 0)));
      await chmod(path, 0o000);
      assert.throws(() => loadServices({ KLR_SERVICES_FILE: path }), {
        name: 'ServicesFileError',
        message: `services file ${path} (KLR_SERVICES_FILE): cannot be read (EACCES)`,
      });
    }),
);

test('loadServices: a 5 MB file or an endless one is read only as far as the limit', () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'services.yaml');
    await writeFile(path, `${file(entry('llama', 0))}#${'x'.repeat(5_000_000)}\n`);
    const started = performance.now();
    assert.throws(() => loadServices({ KLR_SERVICES_FILE: path }), {
      name: 'ServicesFileError',
      message: `services file ${path}: larger than 256 KiB; expected a list of at most 64 short entries (docs/deployment.md)`,
    });
    assert.throws(() => loadServices({ KLR_SERVICES_FILE: '/dev/zero' }), {
      name: 'ServicesFileError',
      message: /^services file \/dev\/zero: larger than 256 KiB/,
    });
    const ms = performance.now() - started;
    assert.ok(ms < 2_000, `refused in ${Math.round(ms)} ms`);
  }));

test('KLR_SERVICES_FILE together with KLR_SERVICE_CONFIG is refused', () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'services.yaml');
    await writeFile(path, file(entry('llama', 0)));
    assert.throws(
      () => loadServices({ KLR_SERVICES_FILE: path, KLR_SERVICE_CONFIG: '/etc/vllm/config.yaml' }),
      {
        name: 'SettingsError',
        message:
          'invalid setting KLR_SERVICE_CONFIG="/etc/vllm/config.yaml": expected unset when KLR_SERVICES_FILE is set: the services file lists every service with its config',
      },
    );
    // Blank is unset.
    assert.equal(loadServices({ KLR_SERVICES_FILE: path, KLR_SERVICE_CONFIG: ' ' }).length, 1);
  }));

const SHORTCUT = {
  KLR_SERVICE_CONFIG: '/etc/vllm/config.yaml',
  KLR_SERVICE_RESTART_CMD: '["systemctl","restart","vllm"]',
};

test('the KLR_SERVICE_* shortcut is one service "vllm" on every GPU, continuing the single-service ids', () => {
  const [spec, ...rest] = loadServices({ ...SHORTCUT, KLR_BACKUP_DIR: '/var/lib/kloros-healing/backups' });
  assert.deepEqual(rest, []);
  assert.equal(DEFAULT_SERVICE_NAME, 'vllm');
  assert.equal(spec!.name, 'vllm');
  assert.equal(spec!.legacyIds, true);
  assert.equal(spec!.gpus, null);
  assert.equal(spec!.log, null);
  assert.equal(spec!.modelProfilePath, null);
  assert.equal(spec!.settings.configPath, '/etc/vllm/config.yaml');
  assert.deepEqual(spec!.settings.restartCommand, ['systemctl', 'restart', 'vllm']);
  assert.equal(spec!.settings.baseUrl, 'http://127.0.0.1:8000');
  // Its backups stay where the single-service release kept them.
  assert.equal(spec!.settings.backupDir, '/var/lib/kloros-healing/backups');
  assert.equal(workflowService(spec!), null);
  assert.equal(
    healingWorkflowId('gpu-1', 'vllm_oom', workflowService(spec!)),
    'kloros-healing/gpu-1/vllm_oom',
  );
});

test('the shortcut: KLR_SERVICE_NAME names it, KLR_SERVICE_LOG and KLR_MODEL_PROFILE come along', () => {
  const [spec] = loadServices({
    ...SHORTCUT,
    KLR_SERVICE_NAME: ' llama-70b ',
    KLR_SERVICE_LOG: '/var/log/vllm/vllm.log',
    KLR_MODEL_PROFILE: '/etc/kloros-healing/llama.yaml',
  });
  assert.equal(spec!.name, 'llama-70b');
  assert.equal(spec!.legacyIds, true);
  assert.deepEqual(spec!.log, { file: '/var/log/vllm/vllm.log' });
  assert.equal(spec!.modelProfilePath, '/etc/kloros-healing/llama.yaml');
  assert.equal(loadServices({ ...SHORTCUT, KLR_SERVICE_NAME: '  ' })[0]!.name, 'vllm');
});

test('the shortcut: a bad KLR_SERVICE_NAME is refused like any setting, a bad KLR_SERVICE_* too', () => {
  for (const name of ['../x', 'Llama', 'll\u0430ma', 'x'.repeat(64)])
    assert.throws(() => loadServices({ ...SHORTCUT, KLR_SERVICE_NAME: name }), {
      name: 'SettingsError',
      message: `invalid setting KLR_SERVICE_NAME=${JSON.stringify(name)}: expected ${SERVICE_EXPECTED}`,
    });
  assert.throws(() => loadServices({ ...SHORTCUT, KLR_SERVICE_RESTART_CMD: 'systemctl restart vllm' }), {
    name: 'SettingsError',
    message:
      /^invalid setting KLR_SERVICE_RESTART_CMD="systemctl restart vllm": expected a JSON array of strings/,
  });
});

test('neither a services file nor KLR_SERVICE_CONFIG: no service (the worker measures VRAM only)', () => {
  assert.deepEqual(loadServices({}), []);
  assert.deepEqual(loadServices({ KLR_SERVICES_FILE: ' ', KLR_SERVICE_CONFIG: '' }), []);
  assert.deepEqual(loadServices({ KLR_SERVICE_NAME: 'llama' }), []);
});

// ---- routing a symptom to a service, and the ids that name one

const LEGACY_AND_ONE = [
  { name: 'llama', legacyIds: true },
  { name: 'qwen', legacyIds: false },
];
const TWO_NEW = [
  { name: 'llama', legacyIds: false },
  { name: 'qwen', legacyIds: false },
];

test('routeService: an unlabelled symptom goes to the legacy service, or to a host’s only service', () => {
  assert.deepEqual(routeService([], null), { ok: true, service: null });
  assert.deepEqual(routeService([{ name: 'vllm', legacyIds: true }], null), { ok: true, service: null });
  assert.deepEqual(routeService([{ name: 'llama', legacyIds: false }], null), { ok: true, service: 'llama' });
  assert.deepEqual(routeService(LEGACY_AND_ONE, null), { ok: true, service: null });
  assert.deepEqual(routeService(TWO_NEW, null), {
    ok: false,
    error:
      'no service named: this host runs several ("llama", "qwen"); expected a service label naming one of them',
  });
});

test('routeService: a label names a configured service; the legacy one has ids without it', () => {
  assert.deepEqual(routeService(LEGACY_AND_ONE, 'llama'), { ok: true, service: null });
  assert.deepEqual(routeService(LEGACY_AND_ONE, 'qwen'), { ok: true, service: 'qwen' });
  assert.deepEqual(routeService(TWO_NEW, 'llama'), { ok: true, service: 'llama' });
  assert.deepEqual(routeService(TWO_NEW, 'mistral'), {
    ok: false,
    error: 'unknown service "mistral": this host runs "llama", "qwen"',
  });
  // A door that knows no services takes a valid label as it is.
  assert.deepEqual(routeService([], 'mistral'), { ok: true, service: 'mistral' });
});

test('routeService: a label that cannot be a service name is refused, whatever the host runs', () => {
  for (const services of [[], TWO_NEW, LEGACY_AND_ONE])
    for (const label of ['../x', 'Llama', 'll\u0430ma', '', 'a/b', 'x'.repeat(64)])
      assert.deepEqual(routeService(services, label), {
        ok: false,
        error: `service ${JSON.stringify(label)}: expected ${SERVICE_EXPECTED}`,
      });
});

test('workflowService: null for the legacy service, its name otherwise', () => {
  assert.equal(workflowService({ name: 'vllm', legacyIds: true }), null);
  assert.equal(workflowService({ name: 'qwen', legacyIds: false }), 'qwen');
});

test('isValidService: RFC 1123 labels only', () => {
  for (const good of ['a', '0', 'vllm', 'llama-70b', 'a--b', '8b', 'x'.repeat(63)])
    assert.equal(isValidService(good), true, good);
  for (const bad of [
    '',
    '-a',
    'a-',
    'A',
    'a_b',
    'a.b',
    'a b',
    '../x',
    'x'.repeat(64),
    'll\u0430ma',
    'llama\n',
    7,
    null,
    undefined,
    ['a'],
    { name: 'a' },
  ])
    assert.equal(isValidService(bad), false, JSON.stringify(bad));
});

test('parseHealingWorkflowId: legacy and per-service ids, both ways', () => {
  assert.deepEqual(parseHealingWorkflowId('kloros-healing/gpu-1/vllm_oom'), {
    host: 'gpu-1',
    service: null,
    kind: 'vllm_oom',
  });
  assert.deepEqual(parseHealingWorkflowId('kloros-healing/gpu-1/llama-70b/vllm_oom'), {
    host: 'gpu-1',
    service: 'llama-70b',
    kind: 'vllm_oom',
  });
  for (const [host, service, kind] of [
    ['gpu-1', null, 'vllm_oom'],
    ['gpu-node.example.com', 'qwen-32b', 'gpu_xid'],
    ['h_1', '0', 'sglang_oom'],
  ] as const)
    assert.deepEqual(parseHealingWorkflowId(healingWorkflowId(host, kind, service)), { host, service, kind });
});

test('parseHealingWorkflowId: anything else is not a healing workflow id', () => {
  for (const id of [
    '',
    'kloros-healing',
    'kloros-healing/gpu-1',
    'kloros-healing/gpu-1/',
    'kloros-healing//vllm_oom',
    'kloros-healing/gpu-1//vllm_oom',
    'kloros-healing/gpu-1/llama/extra/vllm_oom',
    'kloros-healing/gpu-1/../vllm_oom',
    'kloros-healing/../gpu-1/vllm_oom',
    'kloros-healing/gpu-1/Llama/vllm_oom',
    'kloros-healing/gpu-1/ll\u0430ma/vllm_oom',
    'kloros-healing/gpu-1/llama_70b/vllm_oom',
    'kloros-healing/gpu-1/llama/VLLM_OOM',
    'kloros-healing/gpu-1/vllm-oom',
    'kloros-host/gpu-1',
    'other/gpu-1/llama/vllm_oom',
    ' kloros-healing/gpu-1/vllm_oom',
    'kloros-healing/gpu-1/vllm_oom\n',
  ])
    assert.equal(parseHealingWorkflowId(id), null, JSON.stringify(id));
});
