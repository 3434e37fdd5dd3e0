// Temporal's time-skipping test server, as an executable that TestWorkflowEnvironment.createTimeSkipping
// runs as an 'existing-path' (`<it> <port>`): $KLR_TEST_SERVER, `temporal-test-server` on PATH, a cached
// copy, the Temporal SDK's download (a native build, no JVM) when temporal.download answers, else the
// Java server from Maven Central (io.temporal:temporal-test-server), fetched with Maven into the user
// cache and wrapped in a script (src/servers/source.ts has the order).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cacheDir } from './cache.js';
import {
  findOnPath,
  installAtomically,
  isExecutableFile,
  runStreaming,
  withLock,
  type Log,
} from './install.js';
import { downloadWithSdk, sdkCannotDownload, sdkDownloadedPath, sdkInfoUrl } from './sdk-download.js';
import { resolveServer, type Resolved, type ServerSource } from './source.js';

/** Newest release on Maven Central when pinned (its metadata listed 1.38.0 as latest). */
export const TEST_SERVER_VERSION = '1.38.0';
// Pinned so the build doesn't depend on Maven's default (2.8, from 2013).
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';
// Matches the slf4j-api the server depends on; silences slf4j's "no binding" warning on every start.
const SLF4J_VERSION = '1.7.36';
const WRAPPER_NAME = 'temporal-test-server';

export function cachedTestServerDir(): string {
  return join(cacheDir(), `temporal-test-server-${TEST_SERVER_VERSION}`);
}

/** The test server's ways in, for resolveServer. */
export function testServerSource(): ServerSource {
  return {
    what: 'temporal test server',
    overrideVar: 'KLR_TEST_SERVER',
    pathName: 'temporal-test-server',
    downloadedPath: sdkDownloadedPath('test-server'),
    builtPath: join(cachedTestServerDir(), WRAPPER_NAME),
    infoUrl: sdkInfoUrl('test-server'),
    buildHow: 'Maven',
    cannotDownload: () => sdkCannotDownload('test-server'),
    download: () => downloadWithSdk('test-server'),
    build: async (log) => void (await buildTestServer(log)),
  };
}

/**
 * Path of an executable that starts the time-skipping test server (`<path> <port>`): $KLR_TEST_SERVER,
 * `temporal-test-server` on PATH, a cached copy (the SDK's download, then our Maven build), the SDK's
 * download when temporal.download answers, else the Java server's jars fetched with Maven (about half a
 * minute the first time) behind a wrapper script. Logs one line saying which, and why.
 */
export async function ensureTestServer(log?: Log): Promise<string> {
  const { path } = await locateTestServer(log);
  const dir = cachedTestServerDir();
  if (path === join(dir, WRAPPER_NAME)) {
    await refreshWrapper(dir);
    await ensureClassArchive(dir, log);
  }
  return path;
}

/** As ensureTestServer, with which way it came (`via`) and the line it logged. */
export function locateTestServer(log?: Log, env: NodeJS.ProcessEnv = process.env): Promise<Resolved> {
  return resolveServer(testServerSource(), { log, env });
}

async function buildTestServer(log?: Log): Promise<string> {
  const finalDir = cachedTestServerDir();
  const wrapper = join(finalDir, WRAPPER_NAME);
  return withLock(
    `${finalDir}.lock`,
    async () => {
      if (await isExecutableFile(wrapper)) return wrapper; // built by another process meanwhile
      await checkJavaAndMaven();
      log?.(`fetching temporal-test-server ${TEST_SERVER_VERSION} with Maven (first time only)`);
      await installAtomically(finalDir, (tmpDir) => fetchInto(tmpDir, log));
      log?.(`temporal-test-server installed at ${wrapper}`);
      return wrapper;
    },
    { log, what: `fetching the Temporal test server into ${finalDir}` },
  );
}

async function checkJavaAndMaven(): Promise<void> {
  const missing: string[] = [];
  const javaHome = process.env.JAVA_HOME;
  const java = javaHome ? await isExecutableFile(join(javaHome, 'bin', 'java')) : await findOnPath('java');
  if (!java) missing.push(javaHome ? `java (JAVA_HOME=${javaHome} has no bin/java)` : 'java');
  if (!(await findOnPath('mvn'))) missing.push('mvn');
  if (missing.length > 0) {
    throw new Error(
      `Fetching the Temporal time-skipping test server with Maven needs ${missing.join(' and ')} on PATH. ` +
        'Install a Java runtime (17 is tested) and Maven, e.g. `apt-get install openjdk-17-jre-headless maven`, ' +
        'or put a `temporal-test-server` on PATH or set KLR_TEST_SERVER to one, or let this machine reach ' +
        'temporal.download (the Temporal SDK downloads a native one).',
    );
  }
}

async function fetchInto(dir: string, log?: Log): Promise<void> {
  const pomDir = await mkdtemp(join(tmpdir(), 'klr-test-server-pom-'));
  try {
    await writeFile(join(pomDir, 'pom.xml'), pomXml());
    const args = ['-B', '-q', '--no-transfer-progress', '-f', join(pomDir, 'pom.xml')];
    args.push(`${DEPENDENCY_PLUGIN}:copy-dependencies`, `-DoutputDirectory=${join(dir, 'lib')}`);
    args.push('-DincludeScope=runtime');
    await runStreaming('mvn', args, { log, prefix: 'mvn: ' });
  } finally {
    await rm(pomDir, { recursive: true, force: true });
  }
  const jars = await readdir(join(dir, 'lib'));
  if (!jars.includes(`temporal-test-server-${TEST_SERVER_VERSION}.jar`)) {
    throw new Error(
      `Maven finished but temporal-test-server-${TEST_SERVER_VERSION}.jar is not in ${dir}/lib`,
    );
  }
  await writeFile(join(dir, WRAPPER_NAME), wrapperScript());
  await chmod(join(dir, WRAPPER_NAME), 0o755);
}

function pomXml(): string {
  const dep = (groupId: string, artifactId: string, version: string) =>
    `    <dependency><groupId>${groupId}</groupId><artifactId>${artifactId}</artifactId>` +
    `<version>${version}</version></dependency>`;
  return `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.kloros-healing</groupId>
  <artifactId>temporal-test-server-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
${dep('io.temporal', 'temporal-test-server', TEST_SERVER_VERSION)}
${dep('org.slf4j', 'slf4j-nop', SLF4J_VERSION)}
  </dependencies>
</project>
`;
}

const JVM_FLAGS = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-Xshare:auto'];
const MAIN_CLASS = 'io.temporal.testserver.TestServer';
const ARCHIVE_NAME = 'test-server.jsa';

// `exec` so the PID the SDK tracks and kills is the JVM itself. The SDK allows 5 s for the port to
// open: C1-only JIT, serial GC and class-data sharing trim JVM start-up, and the server's own classes
// come from an archive beside the wrapper once there is one (ensureClassArchive). Paths are relative to
// the script, so the directory can be renamed into place after it was written.
function wrapperScript(): string {
  const flags = JVM_FLAGS.join(' ');
  return `#!/bin/sh
# Temporal time-skipping test server ${TEST_SERVER_VERSION}. Usage: ${WRAPPER_NAME} <port>
# Generated by kloros-healing (src/servers/test-server.ts).
dir="$(dirname "$0")"
java="\${JAVA_HOME:+$JAVA_HOME/bin/}java"
if [ -f "$dir/${ARCHIVE_NAME}" ]; then
  exec "$java" ${flags} -XX:SharedArchiveFile="$dir/${ARCHIVE_NAME}" -cp "$dir/lib/*" ${MAIN_CLASS} "$@"
fi
exec "$java" ${flags} -cp "$dir/lib/*" ${MAIN_CLASS} "$@"
`;
}

/** A wrapper written by an earlier release is rewritten (the jars stay). */
async function refreshWrapper(dir: string): Promise<void> {
  const wrapper = join(dir, WRAPPER_NAME);
  const wanted = wrapperScript();
  if ((await readFile(wrapper, 'utf8').catch(() => wanted)) === wanted) return;
  const tmp = `${wrapper}.tmp-${process.pid}`;
  await writeFile(tmp, wanted);
  await chmod(tmp, 0o755);
  await rename(tmp, wrapper);
}

/**
 * The classes the server loads at start-up, dumped once into a class-data archive beside the wrapper
 * (`-XX:ArchiveClassesAtExit`, JDK 13+): with it a start takes about half the time and CPU (1.0–1.4 s →
 * 0.5–0.6 s until the SDK's environment is ready, on 2 cores). Best effort: a JVM that cannot write or
 * use one starts as before (a different JDK ignores it).
 */
async function ensureClassArchive(dir: string, log?: Log): Promise<void> {
  const archive = join(dir, ARCHIVE_NAME);
  if (existsSync(archive)) return;
  await withLock(
    `${archive}.lock`,
    async () => {
      if (existsSync(archive)) return;
      const tmp = `${archive}.tmp-${process.pid}`;
      try {
        await dumpClassArchive(dir, tmp);
        await rename(tmp, archive);
        log?.(`temporal test server: class-data archive written to ${archive}`);
      } catch (err) {
        log?.(
          `temporal test server: no class-data archive (${(err as Error).message}); it starts without one`,
        );
      } finally {
        await rm(tmp, { force: true });
      }
    },
    { log, what: 'writing the test server class-data archive', timeoutMs: 120_000 },
  );
}

/** Starts the server with -XX:ArchiveClassesAtExit, waits for its port, stops it: the JVM writes the archive. */
async function dumpClassArchive(dir: string, out: string): Promise<void> {
  const port = await freePort();
  const java = process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
  const args = [...JVM_FLAGS, `-XX:ArchiveClassesAtExit=${out}`, '-cp', `${join(dir, 'lib')}/*`];
  const child = spawn(java, [...args, MAIN_CLASS, String(port)], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.once('error', () => undefined); // seen as an exit
  try {
    const deadline = Date.now() + 30_000;
    while (!(await accepts(port))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error('the server exited at start');
      if (Date.now() > deadline) throw new Error('its port did not open within 30 s');
      await sleep(100);
    }
  } finally {
    child.kill('SIGTERM'); // the archive is written as the JVM exits
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
  if (!existsSync(out)) throw new Error('the JVM wrote none');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
