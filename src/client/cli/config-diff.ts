// What a rollback changed, key by key: the top-level keys of two vLLM YAML configs. Pure.
import { parse } from 'yaml';

export interface KeyChange {
  key: string;
  from: unknown;
  to: unknown;
}

function topLevel(text: string): Record<string, unknown> | null {
  try {
    const doc: unknown = parse(text);
    return typeof doc === 'object' && doc !== null && !Array.isArray(doc)
      ? (doc as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** Changed top-level keys (absent = undefined), sorted; null when either side is not a YAML mapping. */
export function diffConfigKeys(before: string, after: string): KeyChange[] | null {
  const a = topLevel(before);
  const b = topLevel(after);
  if (a === null || b === null) return null;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((key) => ({ key, from: a[key], to: b[key] }));
}

export function formatKeyChanges(changes: readonly KeyChange[]): string {
  const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v));
  return changes.map((c) => `  ${c.key}: ${show(c.from)} → ${show(c.to)}`).join('\n');
}
