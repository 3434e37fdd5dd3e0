// The observer daemon's settings: what it follows, where it keeps its state, and one clear line for
// every bad value.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SettingsError } from '../../src/config/settings.js';
import { loadObserverSettings, parseListenAddress } from '../../src/observer/observer-settings.js';
import { positionFile } from '../../src/observer/sources/position-state.js';
import { ServicesFileError } from '../../src/service/services-file.js';
import { splitCommandLine } from '../../src/observer/sources/command-line.js';

describe('observer settings', () => {
  test('a file to follow, state under the data directory, the door off', () => {
    const s = loadObserverSettings({
      KLR_HOST: 'gpu-1',
      KLR_DATA_DIR: '/var/lib/kloros',
      KLR_OBSERVER_FILE: 'vllm.log',
    });
    assert.equal(s.host, 'gpu-1');
    assert.deepEqual(s.source, { type: 'file', path: resolve('vllm.log'), fromStart: false });
    assert.equal(s.stateDir, '/var/lib/kloros/observer');
    assert.equal(s.spoolDir, join('/var/lib/kloros/observer', 'spool'));
    assert.equal(s.spoolMaxBytes, 256 * 1024 * 1024);
    assert.equal(s.attemptTimeoutMs, 10_000);
    assert.equal(s.httpDoor, null);
  });

  test("KLR_SERVICE_LOG (the worker's log setting) is followed when no observer source is named", () => {
    const s = loadObserverSettings({
      KLR_HOST: 'gpu-1',
      KLR_SERVICE_LOG: '/var/log/vllm.log',
      KLR_OBSERVER_FROM_START: '1',
    });
    assert.deepEqual(s.source, { type: 'file', path: '/var/log/vllm.log', fromStart: true });
    assert.equal(s.memoryKind, null, 'unset: vllm_oom, or what a message names');
    const sglang = loadObserverSettings({
      KLR_HOST: 'gpu-1',
      KLR_OBSERVER_FILE: '/var/log/sglang.log',
      KLR_OBSERVER_KIND: 'sglang_oom',
    });
    assert.equal(sglang.memoryKind, 'sglang_oom');
  });

  test('a command is split into arguments; no shell ever runs it', () => {
    const s = loadObserverSettings({
      KLR_HOST: 'gpu-1',
      KLR_OBSERVER_COMMAND: 'journalctl -f -u vllm -o cat',
    });
    assert.deepEqual(s.source, { type: 'command', argv: ['journalctl', '-f', '-u', 'vllm', '-o', 'cat'] });
    assert.deepEqual(splitCommandLine(`docker logs -f "my vllm" --since '1 h' a\\ b`), [
      'docker',
      'logs',
      '-f',
      'my vllm',
      '--since',
      '1 h',
      'a b',
    ]);
    assert.deepEqual(splitCommandLine('["kubectl","logs","-f","pod/vllm-0"]'), [
      'kubectl',
      'logs',
      '-f',
      'pod/vllm-0',
    ]);
    assert.deepEqual(splitCommandLine('echo "$HOME" | grep x'), ['echo', '$HOME', '|', 'grep', 'x']);
    assert.equal(splitCommandLine('echo "unclosed'), null);
    assert.equal(splitCommandLine('   '), null);
    assert.equal(splitCommandLine('[1,2]'), null);
  });

  test('bad values stop the daemon with one line naming the variable', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /KLR_OBSERVER_FILE="": expected a log file to follow .* nothing to observe/],
      [
        { KLR_OBSERVER_FILE: 'a.log', KLR_OBSERVER_COMMAND: 'journalctl -f' },
        /either KLR_OBSERVER_FILE or KLR_OBSERVER_COMMAND/,
      ],
      [{ KLR_OBSERVER_COMMAND: 'tail -f "x' }, /KLR_OBSERVER_COMMAND=.*unclosed quote/],
      [{ KLR_OBSERVER_COMMAND: 'journalctl -f | grep oom' }, /KLR_OBSERVER_COMMAND=.*shell operator "\|"/],
      [{ KLR_OBSERVER_COMMAND: '["journalctl", 1]' }, /KLR_OBSERVER_COMMAND=.*JSON array of strings/],
      [
        { KLR_OBSERVER_FILE: 'a.log', KLR_OBSERVER_SPOOL_MAX_MB: '0' },
        /KLR_OBSERVER_SPOOL_MAX_MB="0": expected a whole number of MiB/,
      ],
      [
        { KLR_OBSERVER_FILE: 'a.log', KLR_OBSERVER_FROM_START: 'sometimes' },
        /KLR_OBSERVER_FROM_START="sometimes"/,
      ],
      [{ KLR_OBSERVER_FILE: 'a.log', KLR_HTTP_DOOR: '1' }, /KLR_HTTP_DOOR_TOKEN/],
      [{ KLR_OBSERVER_FILE: 'a.log', KLR_HOST: 'bad host' }, /KLR_HOST="bad host"/],
      [
        { KLR_OBSERVER_FILE: 'a.log', KLR_OBSERVER_KIND: 'SGLang-OOM' },
        /KLR_OBSERVER_KIND="SGLang-OOM": expected the kind of the followed log's memory failures/,
      ],
    ];
    for (const [env, message] of cases) {
      assert.throws(
        () => loadObserverSettings({ KLR_HOST: 'gpu-1', ...env }),
        (err: unknown) => err instanceof SettingsError && message.test(err.message),
        JSON.stringify(env),
      );
    }
  });

  test('the door alone is enough to run', () => {
    const s = loadObserverSettings({
      KLR_HOST: 'gpu-1',
      KLR_HTTP_DOOR: '1',
      KLR_HTTP_DOOR_TOKEN: 'a'.repeat(32),
    });
    assert.equal(s.source, null);
    assert.deepEqual(s.httpDoor?.listen, { host: '127.0.0.1', port: 8787 });
    assert.equal(s.httpDoor?.idleTimeoutMs, 10_000);
    assert.equal(s.httpDoor?.maxConnections, 64);
  });

  test("the door's idle timeout and connection cap: whole numbers in range, else one line", () => {
    const door = { KLR_HOST: 'gpu-1', KLR_HTTP_DOOR: '1', KLR_HTTP_DOOR_TOKEN: 'a'.repeat(32) };
    const s = loadObserverSettings({
      ...door,
      KLR_HTTP_DOOR_IDLE_TIMEOUT: '3',
      KLR_HTTP_DOOR_MAX_CONNECTIONS: '8',
    });
    assert.equal(s.httpDoor?.idleTimeoutMs, 3000);
    assert.equal(s.httpDoor?.maxConnections, 8);
    const cases: [Record<string, string>, RegExp][] = [
      [{ KLR_HTTP_DOOR_IDLE_TIMEOUT: '0' }, /KLR_HTTP_DOOR_IDLE_TIMEOUT="0": expected whole seconds/],
      [{ KLR_HTTP_DOOR_IDLE_TIMEOUT: '2.5' }, /KLR_HTTP_DOOR_IDLE_TIMEOUT="2.5": expected whole seconds/],
      [{ KLR_HTTP_DOOR_IDLE_TIMEOUT: '10s' }, /KLR_HTTP_DOOR_IDLE_TIMEOUT="10s": expected .* 1 to 3600/],
      [
        { KLR_HTTP_DOOR_MAX_CONNECTIONS: '0' },
        /KLR_HTTP_DOOR_MAX_CONNECTIONS="0": expected a whole number of connections/,
      ],
      [
        { KLR_HTTP_DOOR_MAX_CONNECTIONS: 'many' },
        /KLR_HTTP_DOOR_MAX_CONNECTIONS="many": expected .* 1 to 65535/,
      ],
    ];
    for (const [env, message] of cases) {
      assert.throws(
        () => loadObserverSettings({ ...door, ...env }),
        (err: unknown) =>
          err instanceof SettingsError && message.test(err.message) && !err.message.includes('\n'),
        JSON.stringify(env),
      );
    }
  });

  test("its own /metrics: on loopback by default, on another port than the worker's; off turns it off", () => {
    const file = { KLR_HOST: 'gpu-1', KLR_OBSERVER_FILE: 'a.log' };
    assert.deepEqual(loadObserverSettings(file).metrics, { host: '127.0.0.1', port: 9466 });
    assert.equal(loadObserverSettings({ ...file, KLR_OBSERVER_METRICS_ADDR: 'off' }).metrics, null);
    assert.equal(loadObserverSettings({ ...file, KLR_OBSERVER_METRICS_ADDR: '0' }).metrics, null);
    assert.deepEqual(loadObserverSettings({ ...file, KLR_OBSERVER_METRICS_ADDR: '[::1]:9999' }).metrics, {
      host: '::1',
      port: 9999,
    });
    // The worker's own addresses moved elsewhere free the observer's choice of theirs.
    assert.deepEqual(
      loadObserverSettings({ ...file, KLR_OBSERVER_METRICS_ADDR: '0.0.0.0:9464', KLR_METRICS_ADDR: 'off' })
        .metrics,
      { host: '0.0.0.0', port: 9464 },
    );
  });

  test('a bad or clashing KLR_OBSERVER_METRICS_ADDR stops the daemon with one line saying what is expected', () => {
    const file = { KLR_HOST: 'gpu-1', KLR_OBSERVER_FILE: 'a.log' };
    const door = { KLR_HTTP_DOOR: '1', KLR_HTTP_DOOR_TOKEN: 'a'.repeat(32) };
    const cases: [Record<string, string>, string][] = [
      [
        { KLR_OBSERVER_METRICS_ADDR: 'localhost:9466' },
        'invalid setting KLR_OBSERVER_METRICS_ADDR="localhost:9466": expected IP:PORT to listen on (e.g. 127.0.0.1:9466, 0.0.0.0:9466, [::1]:9466; port 1-65535), or off (also 0)',
      ],
      [
        { KLR_OBSERVER_METRICS_ADDR: '127.0.0.1:0' },
        'invalid setting KLR_OBSERVER_METRICS_ADDR="127.0.0.1:0": expected IP:PORT to listen on (e.g. 127.0.0.1:9466, 0.0.0.0:9466, [::1]:9466; port 1-65535), or off (also 0)',
      ],
      [
        { KLR_OBSERVER_METRICS_ADDR: '127.0.0.1:9464' },
        'invalid setting KLR_OBSERVER_METRICS_ADDR="127.0.0.1:9464": expected an address other than KLR_METRICS_ADDR (127.0.0.1:9464, the worker\'s metrics): each is served on its own port',
      ],
      [
        { KLR_OBSERVER_METRICS_ADDR: '0.0.0.0:9465' },
        'invalid setting KLR_OBSERVER_METRICS_ADDR="0.0.0.0:9465": expected an address other than KLR_SDK_METRICS_ADDR (127.0.0.1:9465, the SDK\'s metrics): each is served on its own port',
      ],
      [
        { ...door, KLR_OBSERVER_METRICS_ADDR: '127.0.0.1:8787' },
        'invalid setting KLR_OBSERVER_METRICS_ADDR="127.0.0.1:8787": expected an address other than KLR_HTTP_DOOR_ADDR (127.0.0.1:8787, the observer\'s HTTP door): each is served on its own port',
      ],
      [
        { KLR_METRICS_ADDR: '0.0.0.0:9466' },
        'invalid setting KLR_OBSERVER_METRICS_ADDR="127.0.0.1:9466": expected an address other than KLR_METRICS_ADDR (0.0.0.0:9466, the worker\'s metrics): each is served on its own port',
      ],
    ];
    for (const [env, message] of cases) {
      assert.throws(
        () => loadObserverSettings({ ...file, ...env }),
        (err: unknown) => err instanceof SettingsError && err.message === message,
        JSON.stringify(env),
      );
    }
  });

  test('listen addresses are IP literals with a port', () => {
    assert.deepEqual(parseListenAddress('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseListenAddress('[::]:0'), { host: '::', port: 0 });
    assert.equal(parseListenAddress('localhost:80'), null);
    assert.equal(parseListenAddress('127.0.0.1:70000'), null);
    assert.equal(parseListenAddress('127.0.0.1'), null);
  });
});

describe('several services (KLR_SERVICES_FILE)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'klr-obs-services-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const entry = (name: string, port: number, extra: string) =>
    [
      `  - name: ${name}`,
      `    config: ${name}/config.yaml`,
      `    restart: [systemctl, restart, vllm@${name}]`,
      `    url: http://127.0.0.1:${port}`,
      `    gpus: [${port - 8001}]`,
      ...extra
        .split('\n')
        .filter(Boolean)
        .map((l) => `    ${l}`),
    ].join('\n');

  async function servicesFile(name: string, entries: string[]): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, `services:\n${entries.join('\n')}\n`);
    return path;
  }

  test('every service with a log is followed, attributed to its service; one without is listed apart', async () => {
    const file = await servicesFile('three.yaml', [
      entry(
        'llama-70b',
        8001,
        'log: {command: [journalctl, -f, -u, vllm@llama-70b, -o, cat]}\nlegacyIds: true',
      ),
      entry('qwen-32b', 8002, 'log: logs/qwen.log'),
      entry('mistral', 8003, ''),
    ]);
    const s = loadObserverSettings({
      KLR_HOST: 'gpu-1',
      KLR_SERVICES_FILE: file,
      KLR_OBSERVER_FROM_START: '1',
    });
    assert.equal(s.source, null, 'no one-service source');
    assert.deepEqual(s.logs, [
      {
        service: 'llama-70b',
        workflowService: null,
        source: { type: 'command', argv: ['journalctl', '-f', '-u', 'vllm@llama-70b', '-o', 'cat'] },
        stateName: null,
      },
      {
        service: 'qwen-32b',
        workflowService: 'qwen-32b',
        source: { type: 'file', path: join(dir, 'logs', 'qwen.log'), fromStart: true },
        stateName: 'qwen-32b',
      },
    ]);
    assert.deepEqual(s.unfollowed, ['mistral']);
    assert.deepEqual(
      s.services.map((x) => x.name),
      ['llama-70b', 'qwen-32b', 'mistral'],
    );
  });

  test('a position state file per service: two services never share one, the legacy one keeps its old name', () => {
    const path = '/var/log/vllm/a.log';
    const legacy = positionFile('/state', path);
    const a = positionFile('/state', path, 'a');
    const b = positionFile('/state', path, 'b');
    assert.equal(new Set([legacy, a, b]).size, 3);
    assert.match(a, /^\/state\/position-a-[0-9a-f]{16}\.json$/);
    assert.match(legacy, /^\/state\/position-[0-9a-f]{16}\.json$/);
    assert.throws(() => positionFile('/state', path, '../x'), /expected a service name/);
  });

  test('a services file and a one-service source at once is a settings error naming the variable', async () => {
    const file = await servicesFile('one.yaml', [entry('qwen-32b', 8002, 'log: qwen.log')]);
    for (const [variable, value] of [
      ['KLR_OBSERVER_FILE', '/var/log/vllm.log'],
      ['KLR_OBSERVER_COMMAND', 'journalctl -f -u vllm'],
      ['KLR_SERVICE_LOG', '/var/log/vllm.log'],
    ] as const) {
      assert.throws(
        () => loadObserverSettings({ KLR_HOST: 'gpu-1', KLR_SERVICES_FILE: file, [variable]: value }),
        (err: unknown) =>
          err instanceof SettingsError &&
          err.message.startsWith(`invalid setting ${variable}=`) &&
          /unset when KLR_SERVICES_FILE is set/.test(err.message) &&
          !err.message.includes('\n'),
        variable,
      );
    }
  });

  test('two services following one log, or nothing to observe, stop the observer with one line', async () => {
    const shared = await servicesFile('shared.yaml', [
      entry('a', 8001, 'log: same.log'),
      entry('b', 8002, 'log: same.log'),
    ]);
    assert.throws(
      () => loadObserverSettings({ KLR_HOST: 'gpu-1', KLR_SERVICES_FILE: shared }),
      (err: unknown) =>
        err instanceof ServicesFileError && /services "a" and "b" have the same log/.test(err.message),
    );
    const silent = await servicesFile('silent.yaml', [entry('a', 8001, '')]);
    assert.throws(
      () => loadObserverSettings({ KLR_HOST: 'gpu-1', KLR_SERVICES_FILE: silent }),
      (err: unknown) => err instanceof ServicesFileError && /nothing to observe/.test(err.message),
    );
    // With the door on, a services file without logs is fine: the door takes the services' symptoms.
    const door = loadObserverSettings({
      KLR_HOST: 'gpu-1',
      KLR_SERVICES_FILE: silent,
      KLR_HTTP_DOOR: '1',
      KLR_HTTP_DOOR_TOKEN: 'a-token-of-enough-length',
    });
    assert.deepEqual(door.logs, []);
    assert.deepEqual(door.unfollowed, ['a']);
    assert.equal(door.httpDoor?.serviceLabel, 'service');
  });

  test('the one-service settings: the legacy ids, labelled with the shortcut service (none: "")', () => {
    const plain = loadObserverSettings({ KLR_HOST: 'gpu-1', KLR_OBSERVER_FILE: '/var/log/vllm.log' });
    assert.deepEqual(plain.logs, [
      { service: '', workflowService: null, source: plain.source, stateName: null },
    ]);
    assert.deepEqual(plain.services, []);
    const shortcut = loadObserverSettings({
      KLR_HOST: 'gpu-1',
      KLR_SERVICE_CONFIG: '/etc/vllm/config.yaml',
      KLR_SERVICE_RESTART_CMD: '["systemctl","restart","vllm"]',
      KLR_SERVICE_LOG: '/var/log/vllm.log',
      KLR_SERVICE_NAME: 'llama',
    });
    assert.deepEqual(shortcut.logs, [
      {
        service: 'llama',
        workflowService: null,
        source: { type: 'file', path: '/var/log/vllm.log', fromStart: false },
        stateName: null,
      },
    ]);
  });
});
