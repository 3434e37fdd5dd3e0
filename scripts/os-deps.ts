// What the tests need from the operating system, provisioned by the test command itself: Prometheus
// (promtool, and the server for the scrape e2e), Alertmanager's amtool, docker-compose (offline check of
// the compose file) and Chromium (the Web UI test). Only for the test files that run. Installed with
// apt-get when this user can (root, or sudo without a password); otherwise nothing runs and the one
// command to run is printed.
import { spawnSync } from 'node:child_process';
import { relative } from 'node:path';

interface OsDependency {
  /** The program the tests run. */
  command: string;
  /** The Debian package that has it. */
  debianPackage: string;
  /** Test files (paths relative to the repository) that need it. */
  neededBy: RegExp;
}

export const OS_DEPENDENCIES: readonly OsDependency[] = [
  {
    command: 'promtool',
    debianPackage: 'prometheus',
    neededBy: /deploy\/(prometheus-rules|grafana-dashboard)|e2e\/prometheus/,
  },
  { command: 'prometheus', debianPackage: 'prometheus', neededBy: /e2e\/prometheus/ },
  { command: 'amtool', debianPackage: 'prometheus-alertmanager', neededBy: /deploy\/alertmanager/ },
  { command: 'docker-compose', debianPackage: 'docker-compose', neededBy: /deploy\/compose/ },
  { command: 'chromium', debianPackage: 'chromium', neededBy: /e2e\/web-ui/ },
];

// The name goes in as an argument, never into the shell's text.
const onPath = (command: string): boolean =>
  spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' }).status === 0;

/** The Debian packages the given test files need and this machine lacks. */
export function missingPackages(
  files: readonly string[],
  has: (command: string) => boolean = onPath,
): string[] {
  const needed = OS_DEPENDENCIES.filter(
    (d) => files.some((f) => d.neededBy.test(relative('.', f))) && !has(d.command),
  );
  return [...new Set(needed.map((d) => d.debianPackage))].sort();
}

/** Install what is missing, or stop with the command to run. Returns when everything is there. */
export function provisionOsDependencies(files: readonly string[], say: (m: string) => void): void {
  const packages = missingPackages(files);
  if (packages.length === 0) return;
  const asRoot = process.getuid?.() === 0;
  const sudo = asRoot ? [] : ['sudo', '-n'];
  const canInstall =
    onPath('apt-get') &&
    (asRoot || spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore', timeout: 10_000 }).status === 0);
  const manual = `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages.join(' ')}`;
  const refused = process.env.KLR_TEST_INSTALL_OS_DEPS === '0';
  if (!canInstall || refused) {
    const why = refused
      ? 'KLR_TEST_INSTALL_OS_DEPS=0'
      : onPath('apt-get')
        ? 'no root, and sudo asks for a password'
        : 'no apt-get';
    console.error(
      `the tests need ${packages.join(', ')} from the operating system and do not install them here (${why}). Run:\n  ${manual}\n` +
        'then the test command again (docs/testing.md, "What the tests need").',
    );
    process.exit(2);
  }
  say(`installing from Debian what the tests need: ${packages.join(' ')} (apt-get; a minute or two)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['apt-get', 'update', '-qq'],
    ['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages],
  ]) {
    const [program, ...rest] = [...sudo, ...args] as [string, ...string[]];
    const r = spawnSync(program, rest, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status !== 0) {
      console.error(`${args.join(' ')} failed (exit ${r.status ?? r.signal}). Run:\n  ${manual}`);
      process.exit(2);
    }
  }
  const still = missingPackages(files);
  if (still.length > 0) {
    console.error(`installed, but still missing: ${still.join(', ')}. Run:\n  ${manual}`);
    process.exit(2);
  }
  say(`installed: ${packages.join(' ')}`);
}
