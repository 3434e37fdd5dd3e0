// Finds, downloads or builds the `temporal` CLI, whose `server start-dev` is our embedded Temporal
// server: $TEMPORAL_CLI, `temporal` on PATH, a cached copy, the Temporal SDK's download, else a build
// with `go install` (src/servers/source.ts has the order). Newer CLI tags cannot be built with
// `go install` (replace directives), so the build is pinned to v1.5.1.
import { join } from 'node:path';
import { execa } from 'execa';
import { cacheDir } from './cache.js';
import { installAtomically, isExecutableFile, runStreaming, withLock, type Log } from './install.js';
import { downloadWithSdk, sdkCannotDownload, sdkDownloadedPath, sdkInfoUrl } from './sdk-download.js';
import { resolveServer, type Resolved, type ServerSource } from './source.js';

export const TEMPORAL_CLI_VERSION = 'v1.5.1';
const CLI_PACKAGE = 'github.com/temporalio/cli/cmd/temporal';
/** The CLI's go.mod says `go 1.25.0`; an older Go can only build it by fetching a newer toolchain. */
const MIN_GO: readonly [number, number] = [1, 25];
// Same flags as the CLI's release builds: stripped binary, real version string instead of 0.0.0-DEV.
const LDFLAGS = `-s -w -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION.slice(1)}`;

const INSTALL_HINT =
  'Put a `temporal` CLI on PATH or set TEMPORAL_CLI to its path, or let this machine reach ' +
  'temporal.download (the Temporal SDK downloads it), or install Go >= 1.25 (https://go.dev/dl/) ' +
  'so the project can build it.';

export function cachedTemporalCliDir(): string {
  return join(cacheDir(), `temporal-cli-${TEMPORAL_CLI_VERSION}`);
}

function cachedTemporalCliPath(): string {
  return join(cachedTemporalCliDir(), 'bin', 'temporal');
}

/** The CLI's ways in, for resolveServer. */
export function temporalCliSource(): ServerSource {
  return {
    what: 'temporal CLI',
    overrideVar: 'TEMPORAL_CLI',
    pathName: 'temporal',
    downloadedPath: sdkDownloadedPath('cli'),
    builtPath: cachedTemporalCliPath(),
    infoUrl: sdkInfoUrl('cli'),
    buildHow: 'go install',
    cannotDownload: () => sdkCannotDownload('cli'),
    download: () => downloadWithSdk('cli'),
    build: async (log) => void (await buildTemporalCli(log)),
  };
}

/**
 * Path of a `temporal` CLI: `$TEMPORAL_CLI`, `temporal` on PATH, a cached copy (the SDK's download,
 * then our build), the Temporal SDK's download when temporal.download answers, else built now with
 * `go install` (a few minutes the first time). Logs one line saying which, and why.
 */
export async function resolveTemporalCli(log?: Log): Promise<string> {
  return (await locateTemporalCli(log)).path;
}

/** As resolveTemporalCli, with which way it came (`via`) and the line it logged. */
export function locateTemporalCli(log?: Log, env: NodeJS.ProcessEnv = process.env): Promise<Resolved> {
  return resolveServer(temporalCliSource(), { log, env });
}

async function buildTemporalCli(log?: Log): Promise<string> {
  const finalDir = cachedTemporalCliDir();
  const binary = cachedTemporalCliPath();
  return withLock(
    `${finalDir}.lock`,
    async () => {
      if (await isExecutableFile(binary)) return binary; // another process built it while we waited
      await checkGo();
      log?.(`building temporal CLI ${TEMPORAL_CLI_VERSION} with go install (first time only, a few minutes)`);
      await installAtomically(finalDir, async (tmpDir) => {
        try {
          await runStreaming(
            'go',
            ['install', '-trimpath', `-ldflags=${LDFLAGS}`, `${CLI_PACKAGE}@${TEMPORAL_CLI_VERSION}`],
            { env: { GOBIN: join(tmpDir, 'bin'), CGO_ENABLED: '0' }, log, prefix: 'go: ' },
          );
        } catch (err) {
          throw new Error(`Building the temporal CLI failed. ${INSTALL_HINT}\n${(err as Error).message}`);
        }
      });
      log?.(`temporal CLI installed at ${binary}`);
      return binary;
    },
    { log, what: `building the temporal CLI into ${finalDir}` },
  );
}

/** Fails early, with what to install, when `go` is missing or too old to build the CLI. */
async function checkGo(): Promise<void> {
  let out: string;
  try {
    ({ stdout: out } = await execa('go', ['env', 'GOVERSION', 'GOTOOLCHAIN']));
  } catch (err) {
    const notFound = (err as { code?: string }).code === 'ENOENT';
    throw new Error(
      notFound
        ? `No temporal CLI found and \`go\` is not installed. ${INSTALL_HINT}`
        : `Running \`go env\` failed: ${(err as Error).message}. ${INSTALL_HINT}`,
    );
  }
  const [goVersion = '', toolchain = ''] = out.split('\n').map((s) => s.trim());
  const match = /^go(\d+)\.(\d+)/.exec(goVersion);
  const [major, minor] = match ? [Number(match[1]), Number(match[2])] : [0, 0];
  const tooOld = major < MIN_GO[0] || (major === MIN_GO[0] && minor < MIN_GO[1]);
  // With GOTOOLCHAIN=auto, Go >= 1.21 fetches the newer toolchain itself from the module proxy.
  const canSwitch = major === 1 && minor >= 21 && toolchain !== 'local';
  if (tooOld && !canSwitch) {
    throw new Error(
      `The temporal CLI ${TEMPORAL_CLI_VERSION} needs Go >= ${MIN_GO.join('.')}, found ${goVersion || 'unknown'}` +
        (toolchain === 'local' ? ' (GOTOOLCHAIN=local forbids fetching a newer one)' : '') +
        `. ${INSTALL_HINT}`,
    );
  }
}
