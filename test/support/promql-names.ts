// The metric names a PromQL expression reads — for tests that hold alert rules and dashboard queries to
// the names the worker exports. A small scanner, not a full parser: it skips string literals, label
// matchers ({…}, except a `__name__` matcher, whose value is a name), ranges and subqueries ([…]),
// label lists after by/without/on/ignoring/group_left/group_right, keywords, numbers, durations,
// Grafana variables ($host, ${kind}, [[x]]) and function names (an identifier followed by "(").

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
  'atan2',
  // Without "(" these are not functions but still never metric names in the queries we read.
  'start',
  'end',
]);
const LABEL_LIST_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

const IDENT = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
const NUMBER = /(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)(?:[a-zA-Z]+[0-9]*)*/y;

export class PromqlScanError extends Error {}

/** Index just past the bracket that closes the one at `start` (strings inside are skipped). */
function skipBalanced(expr: string, start: number, open: string, close: string): number {
  let depth = 0;
  for (let i = start; i < expr.length; i++) {
    const c = expr[i]!;
    if (c === '"' || c === "'" || c === '`') i = skipString(expr, i) - 1;
    else if (c === open) depth++;
    else if (c === close && --depth === 0) return i + 1;
  }
  throw new PromqlScanError(`unbalanced "${open}" at ${start} in: ${expr}`);
}

/** Index just past the string literal starting at `start`. */
function skipString(expr: string, start: number): number {
  const quote = expr[start]!;
  for (let i = start + 1; i < expr.length; i++) {
    if (quote !== '`' && expr[i] === '\\') i++;
    else if (expr[i] === quote) return i + 1;
  }
  throw new PromqlScanError(`unterminated string at ${start} in: ${expr}`);
}

function nextNonSpace(expr: string, i: number): number {
  while (i < expr.length && /\s/.test(expr[i]!)) i++;
  return i;
}

/** Every metric name the expression selects, in order of first appearance. */
export function metricNames(expr: string): string[] {
  const names: string[] = [];
  const add = (n: string) => {
    if (!names.includes(n)) names.push(n);
  };
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
    } else if (c === '"' || c === "'" || c === '`') {
      i = skipString(expr, i);
    } else if (c === '{') {
      const end = skipBalanced(expr, i, '{', '}');
      const m = /__name__\s*=\s*(?:"([^"]*)"|'([^']*)')/.exec(expr.slice(i, end));
      if (m) add(m[1] ?? m[2]!);
      i = end;
    } else if (c === '[') {
      i = skipBalanced(expr, i, '[', ']');
    } else if (c === '$') {
      // Grafana variable: $name or ${name} / ${name:format}.
      i++;
      if (expr[i] === '{') i = skipBalanced(expr, i, '{', '}');
      else {
        IDENT.lastIndex = i;
        if (IDENT.exec(expr)) i = IDENT.lastIndex;
      }
    } else if (/[0-9.]/.test(c)) {
      NUMBER.lastIndex = i;
      if (!NUMBER.exec(expr)) throw new PromqlScanError(`bad number at ${i} in: ${expr}`);
      i = NUMBER.lastIndex;
    } else if (/[a-zA-Z_:]/.test(c)) {
      IDENT.lastIndex = i;
      IDENT.exec(expr);
      const word = expr.slice(i, IDENT.lastIndex);
      i = IDENT.lastIndex;
      const next = nextNonSpace(expr, i);
      const lower = word.toLowerCase();
      if (LABEL_LIST_KEYWORDS.has(lower)) {
        // by (a, b) / group_left (c) — the label list is not names; group_left may come without one.
        if (expr[next] === '(') i = skipBalanced(expr, next, '(', ')');
      } else if (KEYWORDS.has(lower)) {
        // a keyword
      } else if (expr[next] === '(' || /^(?:by|without)\b/i.test(expr.slice(next))) {
        // a function, or an aggregation (`sum by (kind) (…)` too); its arguments are scanned as they come
      } else {
        add(word);
      }
    } else {
      i++;
    }
  }
  return names;
}

/**
 * The series names a catalog exports: a histogram only as its _bucket, _sum and _count series (its bare
 * name selects nothing), every other metric by its name.
 */
export function exportedSeriesNames(catalog: readonly { name: string; type: string }[]): string[] {
  return catalog.flatMap((m) =>
    m.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => `${m.name}${s}`) : [m.name],
  );
}

/** Names in `used` that the worker does not export. */
export function unknownNames(used: readonly string[], exported: readonly string[]): string[] {
  return used.filter((n) => !exported.includes(n));
}
