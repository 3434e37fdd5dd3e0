// The package's version, from the nearest package.json named kloros-healing above this file (src/ in a
// checkout, dist/ in a build, wherever the build was written). healctl's --version and the
// kloros_build_info metric both read it from here.
import { readFileSync } from 'node:fs';

function packageVersion(): string {
  // src/config/ is two levels below the package; a build written deeper (a test's) a few more.
  for (let levels = 2; levels <= 8; levels++) {
    try {
      const path = new URL(`${'../'.repeat(levels)}package.json`, import.meta.url);
      const pkg = JSON.parse(readFileSync(path, 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'kloros-healing' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: one level up
    }
  }
  return 'unknown';
}

export const VERSION = packageVersion();
