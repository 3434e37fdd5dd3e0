// The Temporal Web UI served by the dev server, driven in headless Chromium (Debian's package, through
// playwright-core): after a demo-like heal cycle on the simulated vLLM, the healing workflows are found
// by their search attributes, and the list and detail pages show the attributes and the state text
// (summary, current details) without opening raw JSON. Screenshots go to test-artifacts/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Client, Connection } from '@temporalio/client';
import { type DevServerHandle, startDevServer } from '../../src/servers/dev-server.js';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/search-attributes.js';
import { healingWorkflowId } from '../../src/domain/identifiers.js';
import { recordSymptom } from '../../src/temporal/symptoms.js';
import { eventually, healingState } from '../support/healing-harness.js';
import { REPO_ROOT } from '../support/heal-stack.js';
import { type Scenario, complete, startScenario, torchOomDetails } from '../support/heal-scenario.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
const host = `webui-${process.pid}`;
const MINUTE = 60_000;

let server: DevServerHandle | undefined;
let connection: Connection | undefined;
let stack: Scenario | undefined;
let browser: Browser | undefined;
let client: Client;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} not found: this test drives the real Web UI in Debian's Chromium — install it with ` +
        '`sudo apt-get install chromium` (.ci/run does); playwright never downloads a browser here',
    );
  }
  await mkdir(ARTIFACTS, { recursive: true });
  server = await startDevServer({ ui: true, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection });
  // The demo's aggressive config; the window is open already so the canary follows the third OOM.
  stack = await startScenario({
    host,
    temporalAddress: server.address,
    serving: { 'gpu-memory-utilization': 0.98, 'max-model-len': 8192 },
    windowOpenNow: true,
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking'],
    timeout: MINUTE,
  });
});

after(async () => {
  await browser?.close();
  await stack?.stop();
  await connection?.close();
  await server?.stop();
});

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `web-ui-${name}.png`), fullPage: true });
}

test('the Web UI lists the healing workflow by its search attributes and shows what it is doing', async () => {
  assert.ok(stack && server?.uiUrl && browser);
  // One OOM in the service, reported three times as the observer would (three incidents).
  assert.equal((await complete(stack.service.baseUrl)).status, 500);
  const oomLine = await eventually('the OOM in the service log', async () => {
    const log = await readFile(stack!.service.logPath, 'utf8');
    return log.split('\n').find((l) => l.includes('CUDA out of memory'));
  });
  for (let i = 1; i <= 3; i++) {
    await recordSymptom(client, host, {
      kind: 'vllm_oom',
      id: `webui:${host}:${i}`,
      source: 'web-ui-test',
      details: torchOomDetails(oomLine),
    });
  }
  await eventually(
    'a promoted canary',
    async () => {
      const s = await healingState(client, host);
      if (s.lastCanary && s.lastCanary.outcome !== 'promoted')
        throw new Error(`canary ${s.lastCanary.outcome}: ${s.lastCanary.reason}`);
      return s.lastCanary?.outcome === 'promoted';
    },
    3 * MINUTE,
  );

  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.setDefaultTimeout(30_000);
  const workflowId = healingWorkflowId(host, 'vllm_oom');

  // The list, filtered the way an operator would: by the search attributes.
  const query = `KlrHost="${host}" AND KlrKind="vllm_oom"`;
  await page.goto(`${server.uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`);
  await page.getByText(workflowId, { exact: true }).first().waitFor();
  const list = await page.innerText('body');
  assert.match(list, /HealingWorkflow/);
  assert.match(list, /KlrKind/, 'the filter by search attribute is shown');
  await shot(page, 'list');

  // The detail page: the summary and the current details (markdown the workflow keeps up to date).
  await page.goto(`${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
  await page.getByText(`Heals vllm_oom on GPU host ${host}`).first().waitFor();
  await shot(page, 'detail');
  // Current details come from the running workflow (the __temporal_workflow_metadata query).
  await page.getByText('User Metadata', { exact: true }).first().click();
  await shot(page, 'user-metadata');
  // The markdown is rendered in its own frame: read the text of every frame.
  const detail = await eventually(
    'the current details on the detail page',
    async () => {
      const texts = await Promise.all(page.frames().map((f) => f.innerText('body').catch(() => '')));
      const all = texts.join('\n');
      return /Last canary: promoted/.test(all) ? all : undefined;
    },
    30_000,
  );
  assert.match(detail, /Symptoms in 24 h: \d+ \/ 3/);
  assert.match(detail, /Maintenance window: window \d\d:\d\d-\d\d:\d\d UTC is open/);
  assert.match(detail, /Downtime budget: .* left of 1 m as of \d\d:\d\d UTC/);
  assert.match(detail, /Next: /);
  await shot(page, 'user-metadata');

  // The search attributes tab: host, kind, mode, armed.
  await page
    .getByRole('tab', { name: 'Search Attributes' })
    .or(page.getByText('Search Attributes', { exact: true }))
    .first()
    .click();
  await page.getByText('KlrHost').first().waitFor();
  const attributes = await page.innerText('body');
  for (const name of ['KlrHost', 'KlrKind', 'KlrMode', 'KlrArmed'])
    assert.match(attributes, new RegExp(name));
  assert.match(attributes, new RegExp(host.replaceAll('.', '\\.')));
  await shot(page, 'search-attributes');
  await page.close();
});
