// Makes sure both Temporal servers the project uses are at hand (taken from PATH or the cache, downloaded
// by the Temporal SDK, or built the first time) and says where they are and which way each came:
// `npx tsx scripts/provision-servers.ts` (npm run servers).
import { locateTemporalCli } from '../src/servers/temporal-cli.js';
import { locateTestServer } from '../src/servers/test-server.js';
import type { Resolved } from '../src/servers/source.js';

async function timed(label: string, locate: (log: (m: string) => void) => Promise<Resolved>): Promise<void> {
  const started = performance.now();
  const { via } = await locate((line) => console.log(`  ${line}`));
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  console.log(`${label}: ${via}, ${seconds} s`);
}

try {
  await timed('temporal CLI', locateTemporalCli);
  await timed('temporal test server', locateTestServer);
} catch (err) {
  console.error(`provision-servers: ${(err as Error).message}`);
  process.exit(1);
}
