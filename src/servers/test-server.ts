// Temporal's time-skipping test server, as an executable that TestWorkflowEnvironment.createTimeSkipping
// runs as an 'existing-path' (`<it> <port>`): $KLR_TEST_SERVER, `temporal-test-server` on PATH, a cached
// copy, the Temporal SDK's download (a native build, no JVM) when temporal.download answers, else the
// Java server from Maven Central (io.temporal:temporal-test-server), fetched with Maven into the user
// cache and wrapped in a script (src/servers/source.ts has the order).
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  return (await locateTestServer(log)).path;
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

// `exec` so the PID the SDK tracks and kills is the JVM itself. The SDK allows 5 s for the port to
// open: C1-only JIT, serial GC and class-data sharing trim JVM start-up. The path is relative to
// the script, so the directory can be renamed into place after it was written.
function wrapperScript(): string {
  return `#!/bin/sh
# Temporal time-skipping test server ${TEST_SERVER_VERSION}. Usage: ${WRAPPER_NAME} <port>
# Generated by kloros-healing (src/servers/test-server.ts).
lib="$(dirname "$0")/lib"
java="\${JAVA_HOME:+$JAVA_HOME/bin/}java"
exec "$java" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -cp "$lib/*" io.temporal.testserver.TestServer "$@"
`;
}
