// The package's version, from the nearest package.json named kloros-healing above this file (src/ in a
// checkout, dist/ in a build, wherever the build was written).
import { readFileSync } from 'node:fs';

function packageVersion(): string {
  for (let up = '../../../'; up.length <= 3 * 8; up += '../') {
    try {
      const pkg = JSON.parse(readFileSync(new URL(`${up}package.json`, import.meta.url), 'utf8')) as {
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
