// The Temporal SDK's own server downloads (the same ones TestWorkflowEnvironment.createLocal and
// createTimeSkipping make): a release of the `temporal` CLI and the native build of the time-skipping
// test server, from temporal.download, in seconds, with no Go and no JVM. We let the SDK fetch the
// binary into the project's cache (by starting its server once and stopping it again) and then run the
// binary ourselves, so that the dev server keeps everything startDevServer gives it (SQLite file, Web UI,
// search attributes, log file, a graceful stop).
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { cacheDir } from './cache.js';
import { DOWNLOAD_HOST } from './source.js';

const require = createRequire(import.meta.url);

export type SdkServer = 'cli' | 'test-server';

/** The SDK version that names the download: @temporalio/testing's (the workers' when it is not installed). */
export function sdkVersion(): string {
  for (const pkg of ['@temporalio/testing/package.json', '@temporalio/worker/package.json']) {
    try {
      return (require(pkg) as { version: string }).version;
    } catch {
      // try the next one
    }
  }
  return 'unknown';
}

/** Why the SDK cannot download here, found without a network; undefined when it can try. */
export function sdkCannotDownload(server: SdkServer): string | undefined {
  try {
    require.resolve('@temporalio/testing');
  } catch {
    return '@temporalio/testing is not installed (a production install), so the SDK cannot download';
  }
  if (!platform()) return `the SDK has no download for ${process.platform}`;
  if (!arch()) return `the SDK has no download for ${process.arch}`;
  // The SDK's docs: the time-skipping test server is not built for ARM.
  if (server === 'test-server' && arch() === 'arm64') return 'the SDK has no test server download for ARM';
  return undefined;
}

function platform(): string | undefined {
  return { linux: 'linux', darwin: 'darwin' }[process.platform as string];
}

function arch(): string | undefined {
  return { x64: 'amd64', arm64: 'arm64' }[process.arch as string];
}

export function sdkDownloadDir(): string {
  return join(cacheDir(), 'sdk-downloads');
}

/** Where the SDK puts the binary (its file name for the version "default" of this SDK release). */
export function sdkDownloadedPath(server: SdkServer): string {
  const prefix = server === 'cli' ? 'temporal' : 'temporal-test-server';
  return join(sdkDownloadDir(), `${prefix}-sdk-typescript-${sdkVersion()}`);
}

/** The URL the SDK asks first (sdk-core's ephemeral_server: get_or_download). */
export function sdkInfoUrl(server: SdkServer): string {
  const params = new URLSearchParams({
    arch: arch() ?? process.arch,
    platform: platform() ?? process.platform,
  });
  if (server === 'cli') params.set('format', 'tar.gz');
  params.set('sdk-name', 'sdk-typescript');
  params.set('sdk-version', sdkVersion());
  const artifact = server === 'cli' ? 'cli' : 'temporal-test-server';
  return `https://${DOWNLOAD_HOST}/${artifact}/default?${params.toString()}`;
}

// The SDK deletes a download older than its TTL before it starts a server; ours is ours to keep.
const TEN_YEARS_MS = 10 * 365 * 86_400_000;

/**
 * Has the SDK download `server` into sdkDownloadDir(): it downloads, starts the server once (which
 * proves the binary runs here) and we stop it at once.
 */
export async function downloadWithSdk(server: SdkServer): Promise<void> {
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const executable = {
    type: 'cached-download',
    downloadDir: sdkDownloadDir(),
    version: 'default',
    ttl: TEN_YEARS_MS,
  } as const;
  const env =
    server === 'cli'
      ? await TestWorkflowEnvironment.createLocal({
          server: { executable, ui: false, log: { format: 'pretty', level: 'error' } },
        })
      : await TestWorkflowEnvironment.createTimeSkipping({ server: { executable } });
  await env.teardown();
}
