// Text from outside (an operator's --reason, a log line in a decision, a symptom's details) shown inside
// the Markdown of the Temporal Web UI's details: escaped so that it shows as the characters it is and
// can neither format the page, link away nor inject HTML. Pure: runs in the workflow sandbox.

const SPECIAL = /[\\`*_{}[\]()#+\-.!|~<>&"']/g;

/** `text` as literal Markdown inline text: one line, specials escaped, at most `max` characters. */
export function markdownText(text: string, max = 500): string {
  const line = text.replace(/\s+/g, ' ').trim();
  const cut = line.length > max ? `${line.slice(0, max)}…` : line;
  return cut.replace(SPECIAL, (c) => {
    if (c === '<') return '&lt;';
    if (c === '>') return '&gt;';
    if (c === '&') return '&amp;';
    if (c === '"') return '&quot;';
    return `\\${c}`;
  });
}
