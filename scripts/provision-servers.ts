// Makes sure both Temporal servers the project uses are installed in the user cache (building or
// fetching them the first time) and says where they are: `npx tsx scripts/provision-servers.ts`.
import { resolveTemporalCli } from '../src/servers/temporal-cli.js';
import { ensureTestServer } from '../src/servers/test-server.js';

async function timed(label: string, ensure: (log: (m: string) => void) => Promise<string>): Promise<void> {
  const started = performance.now();
  let built = false;
  const path = await ensure((line) => {
    built = true; // only a build or a wait for one logs anything
    console.log(`  ${line}`);
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  console.log(`${label}: ${path} (${built ? 'built' : 'cached'}, ${seconds} s)`);
}

try {
  await timed('temporal CLI', resolveTemporalCli);
  await timed('temporal test server', ensureTestServer);
} catch (err) {
  console.error(`provision-servers: ${(err as Error).message}`);
  process.exit(1);
}
