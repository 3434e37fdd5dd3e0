// Output helpers shared by the commands: TTY detection, tables, relative times. The formatting
// functions are pure (they take `now`), so their tests need no terminal and no clock.
import { formatDuration } from '../../domain/duration-text.js';

/** Whether colour and cursor movement may be used: stdout is a terminal (and NO_COLOR is not set). */
export function isInteractive(stream: NodeJS.WriteStream = process.stdout): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR;
}

/**
 * Left-aligned columns separated by two spaces; a header row first. Trailing spaces are trimmed. A cell
 * longer than `maxCell` is cut with "…" (`-o table`; `-o wide` passes Infinity).
 */
export function formatTable(
  headers: readonly string[],
  allRows: readonly (readonly string[])[],
  maxCell = Infinity,
): string {
  const cut = (c: string) => (c.length > maxCell ? `${c.slice(0, Math.max(1, maxCell - 1))}…` : c);
  const rows = allRows.map((r) => r.map(cut));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** "in 5 h 12 m", "3 m ago", or "now" (within a second), for an ISO time or epoch ms relative to `now`. */
export function relativeTime(at: string | number, now: number): string {
  const ms = (typeof at === 'number' ? at : Date.parse(at)) - now;
  if (Number.isNaN(ms)) return 'at an unknown time';
  if (Math.abs(ms) < 1000) return 'now';
  return ms > 0 ? `in ${formatDuration(ms)}` : `${formatDuration(-ms)} ago`;
}

/** "2026-11-28 03:00:00Z" for an ISO time or epoch ms; the input as it is when it is not a time. */
export function utcStamp(at: string | number): string {
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? String(at) : `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** A time for people: "2026-11-28 03:00:00Z (in 5 h 12 m)". */
export function timeWithRelative(at: string | number, now: number): string {
  if (Number.isNaN(new Date(at).getTime())) return String(at);
  return `${utcStamp(at)} (${relativeTime(at, now)})`;
}

export function mib(v: number | null | undefined): string {
  return v === null || v === undefined ? 'n/a' : `${Math.round(v).toLocaleString('en-US')} MiB`;
}

/** Milliseconds as "1.234 s" (downtimes are measured to the millisecond). */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(3)} s`;
}
