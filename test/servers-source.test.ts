// Where the Temporal servers come from: the order (planServer, pure), the probe of the download host
// against real loopback HTTP servers (one that never answers, one that does, one that refuses), and the
// whole resolution with stand-in download and build steps, so that no test downloads or compiles.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { SettingsError } from '../src/config/settings.js';
import {
  downloadSettings,
  planServer,
  probeDownloadHost,
  resolveServer,
  shortError,
  within,
  withProgress,
  type Found,
  type ServerSource,
} from '../src/servers/source.js';
import { sdkDownloadedPath, sdkInfoUrl, sdkVersion } from '../src/servers/sdk-download.js';
import { temporalCliSource } from '../src/servers/temporal-cli.js';
import { testServerSource } from '../src/servers/test-server.js';

describe('planServer: the order', () => {
  const unreachable = { ok: false, ms: 5000, why: 'temporal.download unreachable (timeout 5 s)' } as const;
  const all: Found = {
    override: { name: 'TEMPORAL_CLI', value: '/opt/t', executable: true },
    onPath: '/usr/bin/temporal',
    downloaded: '/c/sdk/temporal',
    built: '/c/build/temporal',
    buildHow: 'go install',
  };

  test('the variable first, then PATH, then the SDK download in the cache, then the cached build', () => {
    assert.deepEqual(planServer(all), { do: 'use', path: '/opt/t', via: 'env', reason: 'from TEMPORAL_CLI' });
    const { override: _o, ...noEnv } = all;
    assert.deepEqual(planServer(noEnv), {
      do: 'use',
      path: '/usr/bin/temporal',
      via: 'path',
      reason: 'on PATH',
    });
    const { onPath: _p, ...cached } = noEnv;
    assert.equal(planServer(cached).do, 'use');
    assert.equal((planServer(cached) as { via: string }).via, 'download-cache');
    const { downloaded: _d, ...built } = cached;
    assert.deepEqual(planServer(built), {
      do: 'use',
      path: '/c/build/temporal',
      via: 'build-cache',
      reason: 'built earlier with go install, cached',
    });
  });

  test('a cached binary is used without asking the network, even where it is unreachable', () => {
    for (const found of [{ built: '/b' }, { downloaded: '/d' }]) {
      assert.equal(planServer(found).do, 'use');
      assert.equal(planServer(found, { probe: unreachable }).do, 'use');
    }
  });

  test('a variable naming no executable stops with what to do', () => {
    const plan = planServer({ override: { name: 'KLR_TEST_SERVER', value: '/nope', executable: false } });
    assert.deepEqual(plan, {
      do: 'fail',
      reason: 'KLR_TEST_SERVER=/nope is not an executable file. Fix the path or unset KLR_TEST_SERVER.',
    });
  });

  test('nothing local: probe; reachable: download; unreachable or failed: build, with the reason', () => {
    assert.deepEqual(planServer({}), { do: 'probe' });
    assert.deepEqual(planServer({}, { probe: { ok: true, ms: 312, host: 'temporal.download' } }), {
      do: 'download',
      reason: 'temporal.download answered in 0.3 s',
    });
    assert.deepEqual(planServer({}, { probe: unreachable }), {
      do: 'build',
      reason: 'temporal.download unreachable (timeout 5 s)',
    });
    assert.deepEqual(
      planServer(
        {},
        { probe: { ok: true, ms: 300, host: 'temporal.download' }, downloadFailed: 'it failed' },
      ),
      {
        do: 'build',
        reason: 'it failed',
      },
    );
  });

  test('downloads switched off or impossible: build without a probe', () => {
    assert.deepEqual(planServer({ noDownload: 'downloads are off (KLR_SERVER_DOWNLOAD=off)' }), {
      do: 'build',
      reason: 'downloads are off (KLR_SERVER_DOWNLOAD=off)',
    });
  });
});

describe('download settings', () => {
  test('defaults: on, probe 5 s, download 3 min; durations with units or bare seconds', () => {
    assert.deepEqual(downloadSettings({}), {
      enabled: true,
      probeTimeoutMs: 5000,
      downloadTimeoutMs: 180_000,
    });
    assert.deepEqual(
      downloadSettings({
        KLR_SERVER_DOWNLOAD: 'off',
        KLR_SERVER_PROBE_TIMEOUT: '2500ms',
        KLR_SERVER_DOWNLOAD_TIMEOUT: '10',
      }),
      { enabled: false, probeTimeoutMs: 2500, downloadTimeoutMs: 10_000 },
    );
  });

  test('a bad value is one line naming the variable, the value and what is expected', () => {
    assert.throws(
      () => downloadSettings({ KLR_SERVER_DOWNLOAD: 'yes' }),
      (err: Error) => {
        assert.ok(err instanceof SettingsError);
        assert.equal(err.message, 'invalid setting KLR_SERVER_DOWNLOAD="yes": expected auto or off');
        return true;
      },
    );
    assert.throws(() => downloadSettings({ KLR_SERVER_PROBE_TIMEOUT: '0' }), /KLR_SERVER_PROBE_TIMEOUT/);
    assert.throws(() => downloadSettings({ KLR_SERVER_DOWNLOAD_TIMEOUT: 'soon' }), /a duration above zero/);
  });
});

/** A loopback HTTP server; `handle` undefined = accept and never answer. */
async function httpServer(
  handle?: (path: string, method: string, base: string) => { status: number; body?: unknown },
): Promise<{ base: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (!handle) return; // never answers
    const { status, body } = handle(req.url ?? '/', req.method ?? 'GET', base);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, server, requests };
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Answers like temporal.download: the info JSON, then the archive (HEAD). */
const servesDownloads = (path: string, method: string, base: string) =>
  path.startsWith('/cli/') || path.startsWith('/temporal-test-server/') || path.startsWith('/x/')
    ? { status: 200, body: { archiveUrl: `${base}/archive.tar.gz`, fileToExtract: 'temporal' } }
    : path === '/archive.tar.gz' && method === 'HEAD'
      ? { status: 200 }
      : { status: 404 };

describe('probeDownloadHost against real loopback servers', () => {
  let silent: Awaited<ReturnType<typeof httpServer>>;
  let serving: Awaited<ReturnType<typeof httpServer>>;
  before(async () => {
    silent = await httpServer();
    serving = await httpServer(servesDownloads);
  });
  after(async () => {
    await closeServer(silent.server);
    await closeServer(serving.server);
  });

  test('a host that accepts and never answers: unreachable after the timeout, not later', async () => {
    const started = performance.now();
    const probe = await probeDownloadHost(`${silent.base}/cli/default`, 500);
    const ms = performance.now() - started;
    assert.equal(probe.ok, false);
    assert.match((probe as { why: string }).why, /^127\.0\.0\.1:\d+ unreachable \(timeout 0\.5 s\)$/);
    assert.ok(ms >= 450 && ms < 1500, `took ${ms.toFixed(0)} ms for a 500 ms timeout`);
    assert.equal(silent.requests.length, 1, 'the request reached the server');
  });

  test('a host that answers: the info JSON, then HEAD on the archive', async () => {
    const probe = await probeDownloadHost(`${serving.base}/cli/default?arch=amd64`, 2000);
    assert.equal(probe.ok, true);
    assert.deepEqual(serving.requests.slice(-2), ['GET /cli/default?arch=amd64', 'HEAD /archive.tar.gz']);
  });

  test('the info answers but the archive host never does: unreachable within the same timeout', async () => {
    const split = await httpServer((path) => ({
      status: 200,
      body: { archiveUrl: `${silent.base}/archive.tar.gz${path}` },
    }));
    try {
      const started = performance.now();
      const probe = await probeDownloadHost(`${split.base}/cli/default`, 600);
      const ms = performance.now() - started;
      assert.equal(probe.ok, false);
      assert.match(
        (probe as { why: string }).why,
        /but the archive's host 127\.0\.0\.1:\d+ is unreachable \(timeout 0\.6 s\)/,
      );
      assert.ok(ms < 1600, `took ${ms.toFixed(0)} ms for a 600 ms timeout in all`);
    } finally {
      await closeServer(split.server);
    }
  });

  test('refused, or an HTTP error, or no archiveUrl: unreachable at once, saying which', async () => {
    const refused = await httpServer(() => ({ status: 200 }));
    const base = refused.base;
    await closeServer(refused.server);
    const started = performance.now();
    const probe = await probeDownloadHost(`${base}/cli/default`, 5000);
    assert.ok(performance.now() - started < 1000);
    assert.equal(probe.ok, false);
    assert.match((probe as { why: string }).why, /unreachable \(.*ECONNREFUSED/);

    const missing = await probeDownloadHost(`${serving.base}/nothing`, 2000);
    assert.match((missing as { why: string }).why, /answered HTTP 404 for /);
    const noArchive = await httpServer(() => ({ status: 200, body: { hello: 1 } }));
    try {
      const probe2 = await probeDownloadHost(`${noArchive.base}/cli/default`, 2000);
      assert.match((probe2 as { why: string }).why, /answered, but with no archiveUrl/);
    } finally {
      await closeServer(noArchive.server);
    }
  });
});

describe('resolveServer with stand-in download and build steps', () => {
  let dir: string;
  let silent: Awaited<ReturnType<typeof httpServer>>;
  let serving: Awaited<ReturnType<typeof httpServer>>;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'klr-source-'));
    silent = await httpServer();
    serving = await httpServer(servesDownloads);
  });
  after(async () => {
    await closeServer(silent.server);
    await closeServer(serving.server);
    await rm(dir, { recursive: true, force: true });
  });

  async function writeExecutable(path: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, '#!/bin/sh\nexit 0\n');
    await chmod(path, 0o755);
  }

  let n = 0;
  /** A source in a fresh folder whose download and build steps are recorded and write a script. */
  function source(over: Partial<ServerSource> & { downloadMs?: number; buildMs?: number } = {}) {
    const root = join(dir, String(++n));
    const calls: string[] = [];
    const src: ServerSource = {
      what: 'temporal CLI',
      overrideVar: 'TEMPORAL_CLI',
      pathName: 'temporal',
      downloadedPath: join(root, 'sdk', 'temporal-sdk'),
      builtPath: join(root, 'build', 'temporal'),
      infoUrl: `${silent.base}/cli/default`,
      buildHow: 'go install',
      download: async () => {
        calls.push('download');
        await new Promise((resolve) => setTimeout(resolve, over.downloadMs ?? 0));
        await writeExecutable(src.downloadedPath);
      },
      build: async () => {
        calls.push('build');
        await new Promise((resolve) => setTimeout(resolve, over.buildMs ?? 0));
        await writeExecutable(src.builtPath);
      },
      ...over,
    };
    return { src, calls, root };
  }
  const noPath = { PATH: '' };

  test('unreachable host: the probe gives up after its timeout and the build runs, saying why', async () => {
    const { src, calls } = source();
    const lines: string[] = [];
    const started = performance.now();
    const got = await resolveServer(src, {
      log: (l) => lines.push(l),
      env: { ...noPath, KLR_SERVER_PROBE_TIMEOUT: '400ms' },
    });
    const ms = performance.now() - started;
    assert.deepEqual(calls, ['build']);
    assert.equal(got.via, 'build');
    assert.equal(got.path, src.builtPath);
    assert.ok(ms >= 380 && ms < 1400, `took ${ms.toFixed(0)} ms for a 400 ms probe`);
    assert.match(
      got.line,
      /^temporal CLI: built with go install in \d+ ms: 127\.0\.0\.1:\d+ unreachable \(timeout 0\.4 s\) → /,
    );
    assert.equal(lines.at(-1), got.line);

    // The next start: the cached build, no probe (no request reaches the silent server).
    const before = silent.requests.length;
    const t0 = performance.now();
    const again = await resolveServer(src, { env: { ...noPath, KLR_SERVER_PROBE_TIMEOUT: '400ms' } });
    assert.equal(again.via, 'build-cache');
    assert.equal(silent.requests.length, before);
    assert.ok(performance.now() - t0 < 100);
  });

  test('reachable host: the SDK download, then the next start takes it from the cache', async () => {
    const { src, calls } = source({ infoUrl: `${serving.base}/cli/default` });
    const got = await resolveServer(src, { env: noPath });
    assert.deepEqual(calls, ['download']);
    assert.equal(got.via, 'download');
    assert.match(
      got.line,
      /^temporal CLI: downloaded by the Temporal SDK in .*: 127\.0\.0\.1:\d+ answered in /,
    );
    const again = await resolveServer(src, { env: noPath });
    assert.equal(again.via, 'download-cache');
    assert.equal(again.path, src.downloadedPath);
    assert.deepEqual(calls, ['download']);
  });

  test('a download that fails or runs past its timeout falls back to the build, with progress lines', async () => {
    const failing = source({
      infoUrl: `${serving.base}/cli/default`,
      download: () => Promise.reject(new Error('Failed to start ephemeral server: boom (https://x/y): boom')),
    });
    const got = await resolveServer(failing.src, { env: noPath });
    assert.deepEqual(failing.calls, ['build']);
    assert.match(got.line, /: the Temporal SDK's download failed after \d+ ms: boom → /);

    // A download that never ends (nothing keeps the process alive: no timer behind it).
    const slow = source({ infoUrl: `${serving.base}/cli/default`, buildMs: 250 });
    slow.src.download = () => (slow.calls.push('download'), new Promise<void>(() => undefined));
    const lines: string[] = [];
    const started = performance.now();
    const got2 = await resolveServer(slow.src, {
      log: (l) => lines.push(l),
      env: { ...noPath, KLR_SERVER_DOWNLOAD_TIMEOUT: '500ms' },
      downloadProgressMs: 150,
      buildProgressMs: 100,
    });
    assert.ok(performance.now() - started < 2000);
    assert.equal(got2.via, 'build');
    assert.deepEqual(slow.calls, ['download', 'build']);
    assert.ok(
      lines.some((l) => /still downloading with the Temporal SDK, 0\.\d s$/.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /still building with go install, 0\.\d s so far$/.test(l)),
      lines.join('\n'),
    );
    assert.match(
      got2.line,
      /download failed after 0\.5 s: the Temporal SDK's download did not finish within 0\.5 s/,
    );
  });

  test('KLR_SERVER_DOWNLOAD=off, or a reason the SDK cannot download: straight to the build', async () => {
    const before = silent.requests.length;
    const off = source();
    const got = await resolveServer(off.src, { env: { ...noPath, KLR_SERVER_DOWNLOAD: 'off' } });
    assert.match(got.line, /: downloads are off \(KLR_SERVER_DOWNLOAD=off\) → /);
    const cannot = source({ cannotDownload: () => '@temporalio/testing is not installed' });
    const got2 = await resolveServer(cannot.src, { env: noPath });
    assert.match(got2.line, /: @temporalio\/testing is not installed → /);
    assert.equal(silent.requests.length, before, 'no probe');
  });

  test('the variable, then PATH, come before any cache; a failed build says why it was tried', async () => {
    const { src, root } = source();
    await writeExecutable(src.builtPath);
    const bin = join(root, 'bin', 'temporal');
    await writeExecutable(bin);
    assert.equal((await resolveServer(src, { env: { PATH: dirname(bin) } })).via, 'path');
    const own = join(root, 'own-temporal');
    await writeExecutable(own);
    const got = await resolveServer(src, { env: { PATH: dirname(bin), TEMPORAL_CLI: own } });
    assert.deepEqual([got.via, got.path, got.line], ['env', own, `temporal CLI: ${own} (from TEMPORAL_CLI)`]);
    await assert.rejects(
      resolveServer(src, { env: { TEMPORAL_CLI: join(root, 'missing') } }),
      /TEMPORAL_CLI=.*missing is not an executable file/,
    );

    const broken = source({ build: () => Promise.reject(new Error('`go` is not installed.')) });
    await assert.rejects(
      resolveServer(broken.src, { env: { ...noPath, KLR_SERVER_PROBE_TIMEOUT: '200ms' } }),
      /^Error: temporal CLI: 127\.0\.0\.1:\d+ unreachable \(timeout 0\.2 s\), and building it failed\. `go` is not installed\.$/,
    );
  });
});

describe('the real SDK download where temporal.download cannot be reached', () => {
  test('its failure is reported in a line and the build runs instead', async (t) => {
    const real = await probeDownloadHost(temporalCliSource().infoUrl, 3000);
    if (real.ok) {
      t.skip('temporal.download answers here: a unit test does not download the servers');
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'klr-sdk-'));
    const saved = process.env.KLR_CACHE_DIR;
    process.env.KLR_CACHE_DIR = dir; // where the real download step puts the file
    const answering = await httpServer(servesDownloads); // so that the plan says: download
    try {
      for (const make of [temporalCliSource, testServerSource]) {
        const built: string[] = [];
        const src: ServerSource = {
          ...make(),
          infoUrl: `${answering.base}/x/default`,
          build: async () => void built.push('build'),
        };
        const started = performance.now();
        const got = await resolveServer(src, { env: { PATH: '' } });
        assert.deepEqual(built, ['build']);
        assert.equal(got.via, 'build');
        assert.match(got.line, /: the Temporal SDK's download failed after [\d.]+ m?s: failed to download/);
        assert.ok(performance.now() - started < 10_000);
      }
    } finally {
      if (saved === undefined) delete process.env.KLR_CACHE_DIR;
      else process.env.KLR_CACHE_DIR = saved;
      await closeServer(answering.server);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('helpers', () => {
  test('withProgress says it is still running, and stops saying so when done', async () => {
    const lines: string[] = [];
    const value = await withProgress(() => new Promise((resolve) => setTimeout(() => resolve(7), 230)), {
      log: (l) => lines.push(l),
      everyMs: 50,
      line: (ms) => `still at it, ${ms >= 40 ? 'ok' : 'early'}`,
    });
    assert.equal(value, 7);
    assert.ok(lines.length >= 3 && lines.length <= 5, `${lines.length} lines`);
    assert.ok(lines.every((l) => l === 'still at it, ok'));
    const count = lines.length;
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(lines.length, count);
  });

  test('within: the value in time, a TimeoutError past it, and no unhandled late rejection', async () => {
    assert.equal(await within(Promise.resolve(1), 100, 'x'), 1);
    const late = new Promise((_, reject) => setTimeout(() => reject(new Error('late')), 80));
    await assert.rejects(within(late, 20, 'the thing'), /the thing did not finish within 20 ms/);
    await new Promise((resolve) => setTimeout(resolve, 120)); // the late rejection must not surface
  });

  test("shortError keeps the SDK's cause, without the URLs and the repeats", () => {
    const sdk =
      'Failed to start ephemeral server: failed to download ephemeral server executable: error sending request for url (https://temporal.download/cli/default?arch=amd64): error sending request for url (https://temporal.download/cli/default?arch=amd64): client error (Connect): dns error: failed to lookup address information: Name or service not known';
    assert.equal(
      shortError(new Error(sdk)),
      'failed to download ephemeral server executable: error sending request for url: client error (Connect): dns error: failed to lookup address information: Name or service not known',
    );
  });

  test('the probe asks the URL the SDK asks, and the cache paths are the file names the SDK writes', () => {
    const version = sdkVersion();
    assert.match(version, /^\d+\.\d+\.\d+/);
    if (process.platform === 'linux' && process.arch === 'x64') {
      // As printed by sdk-core (ephemeral_server/mod.rs) when its request failed on a machine without internet.
      assert.equal(
        sdkInfoUrl('cli'),
        `https://temporal.download/cli/default?arch=amd64&platform=linux&format=tar.gz&sdk-name=sdk-typescript&sdk-version=${version}`,
      );
      assert.equal(
        sdkInfoUrl('test-server'),
        `https://temporal.download/temporal-test-server/default?arch=amd64&platform=linux&sdk-name=sdk-typescript&sdk-version=${version}`,
      );
    }
    assert.match(sdkDownloadedPath('cli'), new RegExp(`/sdk-downloads/temporal-sdk-typescript-${version}$`));
    assert.match(
      sdkDownloadedPath('test-server'),
      new RegExp(`/sdk-downloads/temporal-test-server-sdk-typescript-${version}$`),
    );
    for (const s of [temporalCliSource(), testServerSource()]) {
      assert.ok(s.infoUrl.startsWith('https://temporal.download/'));
    }
    assert.equal(testServerSource().overrideVar, 'KLR_TEST_SERVER');
    assert.equal(testServerSource().pathName, 'temporal-test-server');
  });
});
