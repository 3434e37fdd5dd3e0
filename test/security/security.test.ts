// Security properties that a reviewer would otherwise have to take on trust: no shell anywhere an input
// reaches, config files written atomically with their owner and mode, no secrets in logs or error text,
// and Temporal TLS / API keys taken through Temporal's own envconfig (env vars and TOML profiles).
// The HTTP door's token, bind address and limits are tested in test/observer/http-door.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { runRestartCommand } from '../../src/service/restart-command.js';
import { atomicWriteFile } from '../../src/service/config-file.js';
import { loadTemporalTarget } from '../../src/config/temporal-connection.js';
import { REPO_ROOT } from '../support/heal-stack.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'klr-security-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

async function sourceFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !/\.(ts|js|mjs)$/.test(entry.name)) continue;
    const path = join(entry.parentPath, entry.name);
    if (!path.includes('node_modules')) out.push(path);
  }
  return out;
}

describe('no shell anywhere an input reaches', () => {
  // Every way Node or execa can hand a string to /bin/sh.
  const SHELL_USES: [RegExp, string][] = [
    [/shell\s*:\s*(true|['"`])/, 'a `shell` option'],
    [/\bexecaCommand(Sync)?\s*\(/, 'execaCommand (parses a command string)'],
    [/\$`/, "execa's $`…` template"],
    [/\bexec(Sync)?\s*\(\s*[`'"]/, 'child_process.exec (runs through /bin/sh)'],
    // spawn/execFile take an argument array and run no shell unless asked (caught above).
    [/import\s*{[^}]*\bexec(Sync)?\b[^}]*}\s*from ['"](node:)?child_process/, 'child_process.exec imported'],
  ];

  test('no source file uses a shell-running API', async () => {
    const roots = ['src', 'sim', 'scripts', 'bin', 'bench', 'examples'].map((d) => join(REPO_ROOT, d));
    const offenders: string[] = [];
    for (const root of roots) {
      let files: string[];
      try {
        files = await sourceFiles(root);
      } catch {
        continue; // a folder that does not exist yet
      }
      for (const file of files) {
        const text = await readFile(file, 'utf8');
        for (const [pattern, what] of SHELL_USES) {
          text.split('\n').forEach((line, i) => {
            if (!line.trim().startsWith('//') && pattern.test(line))
              offenders.push(`${relative(REPO_ROOT, file)}:${i + 1}: ${what}`);
          });
        }
      }
    }
    assert.deepEqual(offenders, []);
  });

  test('the scan itself catches each pattern (it can fail)', () => {
    const samples = [
      "execa('x', [], { shell: true })",
      "await execaCommand('rm -rf ' + dir)",
      'await $`ls ${dir}`',
      "exec('ls ' + dir)",
      "import { exec, spawn } from 'node:child_process';",
    ];
    for (const sample of samples)
      assert.ok(
        SHELL_USES.some(([p]) => p.test(sample)),
        `not caught: ${sample}`,
      );
  });

  test('shell metacharacters in the restart command are passed literally, never run', async () => {
    const marker = join(dir, 'pwned');
    const evil = `$(touch ${marker}); touch ${marker} | touch ${marker} \`touch ${marker}\``;
    const { output } = await runRestartCommand(['/bin/echo', evil], 5_000);
    assert.equal(output, evil, 'echo printed the argument as it was');
    await assert.rejects(stat(marker), { code: 'ENOENT' });
  });
});

describe('config files are written atomically, with their owner and mode', () => {
  test('mode and content: the new bytes appear whole, the mode is kept, no temp file stays', async () => {
    const path = join(dir, 'vllm.yaml');
    await writeFile(path, 'gpu-memory-utilization: 0.98\n');
    await chmod(path, 0o640);
    await atomicWriteFile(path, 'gpu-memory-utilization: 0.9\n');
    assert.equal(await readFile(path, 'utf8'), 'gpu-memory-utilization: 0.9\n');
    assert.equal((await stat(path)).mode & 0o777, 0o640);
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.includes('vllm.yaml') && f !== 'vllm.yaml'),
      [],
      'no temp file left',
    );
  });

  test('a writer killed mid-write leaves the old bytes or the new ones, never a mix', async () => {
    const path = join(dir, 'big.yaml');
    const old = 'max-model-len: 8192\n';
    await writeFile(path, old);
    // 256 MiB takes long enough to write that the SIGKILL lands in the middle of it.
    const script = [
      "import { atomicWriteFile } from './src/service/config-file.ts';",
      "process.stdout.write('writing\\n');",
      `await atomicWriteFile(${JSON.stringify(path)}, Buffer.alloc(256 * 1024 * 1024, 97));`,
    ].join('\n');
    const child = execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      reject: false,
    });
    await new Promise<void>((resolve) => child.stdout?.once('data', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 150));
    child.kill('SIGKILL');
    await child;
    const now = await stat(path);
    assert.ok(
      now.size === old.length || now.size === 256 * 1024 * 1024,
      `the file is ${now.size} bytes: a torn write`,
    );
    if (now.size === old.length) assert.equal(await readFile(path, 'utf8'), old);
  });
});

describe('no secrets in logs or error text', () => {
  const API_KEY = 'klr-test-api-key-5f3c9a7e1d';

  test('the logger redacts tokens, API keys and authorization headers', async () => {
    const script = [
      "import { createLogger } from './src/config/logger.ts';",
      "const log = createLogger('t', 'info');",
      `log.info({ token: '${API_KEY}', apiKey: '${API_KEY}', headers: { authorization: 'Bearer ${API_KEY}' }, target: { apiKey: '${API_KEY}' } }, 'hello');`,
    ].join('\n');
    const r = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      reject: false,
    });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /"msg":"hello"/);
    assert.ok(!r.stdout.includes(API_KEY), `the key leaked: ${r.stdout}`);
    assert.match(r.stdout, /\[redacted\]/);
  });

  test('a worker that cannot connect with an API key says why without printing the key', async () => {
    // Nothing listens on port 1: the worker fails to connect and exits non-zero.
    const r = await execa(process.execPath, ['--import', 'tsx', 'src/workers/main.ts'], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: dir,
        TEMPORAL_ADDRESS: '127.0.0.1:1',
        TEMPORAL_API_KEY: API_KEY,
        KLR_DATA_DIR: join(dir, 'data'),
        KLR_METRICS_ADDR: 'off',
        KLR_SDK_METRICS_ADDR: 'off',
      },
      extendEnv: false,
      reject: false,
      timeout: 60_000,
    });
    assert.notEqual(r.exitCode, 0);
    const all = `${r.stdout}\n${r.stderr}`;
    assert.match(all, /127\.0\.0\.1:1/, 'the error names the address');
    assert.ok(!all.includes(API_KEY), `the key leaked: ${all}`);
  });
});

describe('Temporal TLS and API keys through envconfig', () => {
  test('a TOML profile gives address, namespace, API key and TLS', async () => {
    const toml = join(dir, 'temporal.toml');
    await writeFile(
      toml,
      [
        '[profile.prod]',
        'address = "prod.a1b2c.tmprl.cloud:7233"',
        'namespace = "prod.a1b2c"',
        'api_key = "from-the-profile"',
        '',
        '[profile.mtls]',
        'address = "temporal.internal:7233"',
        'namespace = "healing"',
        '[profile.mtls.tls]',
        'server_name = "temporal.internal"',
        '',
      ].join('\n'),
    );
    const prod = loadTemporalTarget({ HOME: dir, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'prod' });
    assert.equal(prod.address, 'prod.a1b2c.tmprl.cloud:7233');
    assert.equal(prod.namespace, 'prod.a1b2c');
    assert.equal(prod.connectionOptions.apiKey, 'from-the-profile');
    assert.equal(prod.tls, true, 'an API key turns TLS on');

    const mtls = loadTemporalTarget({ HOME: dir, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'mtls' });
    assert.equal(mtls.address, 'temporal.internal:7233');
    assert.equal(mtls.tls, true);
    const tls = mtls.connectionOptions.tls;
    assert.ok(tls && typeof tls === 'object' && tls.serverNameOverride === 'temporal.internal');
  });

  test('environment variables override the profile', () => {
    const t = loadTemporalTarget({
      HOME: dir,
      TEMPORAL_ADDRESS: 'other:7233',
      TEMPORAL_API_KEY: 'from-env',
    });
    assert.equal(t.address, 'other:7233');
    assert.equal(t.connectionOptions.apiKey, 'from-env');
  });

  test('a profile that does not exist is a clear error', async () => {
    const toml = join(dir, 'temporal.toml');
    assert.throws(
      () => loadTemporalTarget({ HOME: dir, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'nope' }),
      {
        message: /TEMPORAL_\*.*nope|profile/i,
      },
    );
  });
});
