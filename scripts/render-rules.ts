// npm run render:rules -- --runbook-base-url https://… [--in FILE] [--out FILE|-]
// Writes the alert rules with every runbook_url under your own base (the URL of your copy of
// docs/alerts.md; KLR_RUNBOOK_BASE_URL works too, the flag wins). Without a base: the committed default,
// so a plain run gives back the committed file. --in defaults to deploy/prometheus/kloros_canary.rules.yml,
// --out to the same file (in place); `--out -` prints. Exit 2 for a bad argument, with one line.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  DEFAULT_RUNBOOK_BASE_URL,
  RUNBOOK_BASE_EXPECTED,
  parseRunbookBase,
  renderRunbookUrls,
} from './render-rules/runbook-urls.js';

const RULES = join('deploy', 'prometheus', 'kloros_canary.rules.yml');

function fail(message: string): never {
  console.error(`render:rules: ${message}`);
  process.exit(2);
}

let values: { 'runbook-base-url'?: string; in?: string; out?: string };
try {
  ({ values } = parseArgs({
    options: {
      'runbook-base-url': { type: 'string' },
      in: { type: 'string' },
      out: { type: 'string' },
    },
    strict: true,
  }));
} catch (err) {
  fail(
    `${(err as Error).message}; usage: npm run render:rules -- --runbook-base-url URL [--in FILE] [--out FILE|-]`,
  );
}

const flag = values['runbook-base-url'];
const fromEnv = process.env.KLR_RUNBOOK_BASE_URL;
const [source, given] =
  flag !== undefined
    ? (['--runbook-base-url', flag] as const)
    : fromEnv !== undefined && fromEnv.trim() !== ''
      ? (['KLR_RUNBOOK_BASE_URL', fromEnv] as const)
      : (['the default', DEFAULT_RUNBOOK_BASE_URL] as const);
const base = parseRunbookBase(given);
if (!base.ok) fail(`${source} ${JSON.stringify(given)}: ${base.problem}; expected ${RUNBOOK_BASE_EXPECTED}`);

const input = values.in ?? RULES;
const output = values.out ?? input;
let text: string;
try {
  text = await readFile(input, 'utf8');
} catch (err) {
  fail(`cannot read ${input}: ${(err as Error).message}`);
}
let rendered: string;
try {
  rendered = renderRunbookUrls(text, base.url);
} catch (err) {
  fail(`${input}: ${(err as Error).message}`);
}
if (output === '-') process.stdout.write(rendered);
else {
  await writeFile(output, rendered);
  console.error(`render:rules: ${output}: runbook_url = ${base.url}#<alert> (${source})`);
}
