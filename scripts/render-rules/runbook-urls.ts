// Every alert's runbook_url is absolute: `<base>#<alert name in lower case>`, where the base is the URL of
// the page that has a section per alert (this repository's docs/alerts.md, or an operator's copy of it).
// The committed rules carry DEFAULT_RUNBOOK_BASE_URL; `npm run render:rules -- --runbook-base-url …`
// writes them with another. Only the runbook_url values change: the rest of the file stays byte for byte.
import { parseDocument } from 'yaml';

/**
 * The base the committed rules carry: a placeholder on a reserved domain (RFC 2606), since where an
 * operator's copy of docs/alerts.md is served is theirs to say.
 */
export const DEFAULT_RUNBOOK_BASE_URL = 'https://kloros-healing.example/docs/alerts.md';

export const RUNBOOK_BASE_EXPECTED =
  'an absolute http(s) URL of your copy of docs/alerts.md, without #fragment or credentials, e.g. https://github.com/acme/kloros-healing/blob/main/docs/alerts.md';

/** The base as a URL, or why it cannot be one (said as what is wrong with it). */
export function parseRunbookBase(text: string): { ok: true; url: string } | { ok: false; problem: string } {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return { ok: false, problem: 'not an absolute URL' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return { ok: false, problem: `${url.protocol.replace(/:$/, '')}: is not http or https` };
  if (url.hash !== '' || text.includes('#'))
    return { ok: false, problem: "it has a #fragment (each alert's anchor is appended to it)" };
  if (url.username !== '' || url.password !== '')
    return { ok: false, problem: 'it carries credentials (every notification would show them)' };
  return { ok: true, url: url.href };
}

/** The anchor of an alert's section in docs/alerts.md: its heading is the alert name. */
export function runbookAnchor(alert: string): string {
  return alert.toLowerCase();
}

interface ScalarNode {
  range?: [number, number, number] | null;
}

/**
 * The rules text with every alert's annotations.runbook_url replaced by `<base>#<anchor>` (single-quoted
 * YAML), everything else unchanged. Throws when an alert has no runbook_url to replace.
 */
export function renderRunbookUrls(rulesText: string, base: string): string {
  const doc = parseDocument(rulesText);
  if (doc.errors.length > 0) throw new Error(`the rules are not valid YAML: ${doc.errors[0]!.message}`);
  const groups = (doc.toJS() as { groups?: { rules?: { alert?: string }[] }[] }).groups ?? [];
  const edits: { from: number; to: number; text: string }[] = [];
  groups.forEach((group, g) =>
    (group.rules ?? []).forEach((rule, r) => {
      if (!rule.alert) return;
      const node = doc.getIn(['groups', g, 'rules', r, 'annotations', 'runbook_url'], true) as
        ScalarNode | undefined;
      if (!node?.range) throw new Error(`${rule.alert}: no annotations.runbook_url to render`);
      const url = `${base}#${runbookAnchor(rule.alert)}`;
      edits.push({ from: node.range[0], to: node.range[1], text: `'${url.replace(/'/g, "''")}'` });
    }),
  );
  let out = rulesText;
  for (const e of edits.sort((a, b) => b.from - a.from))
    out = out.slice(0, e.from) + e.text + out.slice(e.to);
  return out;
}
