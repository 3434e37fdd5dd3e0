// A benchmark's result: rows of figures, each beside its baseline and the ratio of the two, printed as
// a table and written to bench/results/<name>.md and .json with the machine it ran on.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MachineInfo } from './machine.js';

export interface Row {
  metric: string;
  unit: string;
  /** kloros-healing's figure (or the measured figure where there is no separate baseline). */
  value: number | string;
  /** The same figure for the baseline run on the same machine; absent where none applies. */
  baseline?: number | null;
  /** Which way is better, so a reader knows whether a ratio above 1 is good news. */
  better?: 'lower' | 'higher';
}

export interface BenchResult {
  name: string;
  title: string;
  /** What "baseline" means in this benchmark's table. */
  baselineLabel: string;
  /** What was run: counts, concurrency, settings. */
  parameters: Record<string, string | number | boolean>;
  rows: Row[];
  notes: string[];
  durationMs?: number;
}

export interface Benchmark {
  name: string;
  title: string;
  run(opts: BenchOptions): Promise<BenchResult>;
}

export interface BenchOptions {
  /** Named figures from the command line (--symptoms=1000), already parsed as numbers. */
  flags: Record<string, number>;
  log: (line: string) => void;
}

/** value ÷ baseline, or null where there is no baseline or either side is not a positive number. */
export function ratioOf(row: Row): number | null {
  if (typeof row.value !== 'number' || row.baseline == null) return null;
  if (!Number.isFinite(row.value) || !Number.isFinite(row.baseline) || row.baseline === 0) return null;
  return row.value / row.baseline;
}

const fmt = (x: number | string | null | undefined): string => {
  if (x === null || x === undefined) return '—';
  if (typeof x === 'string') return x;
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  if (abs >= 1000) return Math.round(x).toLocaleString('en-US');
  if (abs >= 100) return x.toFixed(0);
  if (abs >= 10) return x.toFixed(1);
  if (abs >= 1) return x.toFixed(2);
  return x === 0 ? '0' : x.toPrecision(2);
};

function cells(row: Row): string[] {
  const ratio = ratioOf(row);
  return [
    row.metric,
    fmt(row.value),
    fmt(row.baseline),
    ratio === null ? '—' : `${fmt(ratio)}×`,
    row.unit + (row.better ? ` (${row.better} is better)` : ''),
  ];
}

function header(result: BenchResult): string[] {
  return ['metric', 'kloros-healing', result.baselineLabel, 'ratio', 'unit'];
}

/** An aligned plain-text table for the terminal. */
export function textTable(result: BenchResult): string {
  const rows = [header(result), ...result.rows.map(cells)];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

/** A Markdown table (docs/benchmarks.md and the results files). */
export function markdownTable(result: BenchResult): string {
  const escape = (s: string) => s.replace(/\|/g, '\\|');
  const rows = result.rows.map(cells);
  return [
    `| ${header(result).join(' | ')} |`,
    `|${header(result)
      .map((_, i) => (i === 0 ? '---' : '---:'))
      .join('|')}|`,
    ...rows.map((r) => `| ${r.map(escape).join(' | ')} |`),
  ].join('\n');
}

export function machineMarkdown(m: MachineInfo): string {
  return [
    `- date: ${m.date}`,
    `- git commit: ${m.commit}${m.dirty ? ' (with uncommitted changes to tracked files)' : ''}`,
    `- CPU: ${m.cpuModel}, ${m.cores} cores`,
    `- RAM: ${m.ramGiB} GiB (${m.freeRamGiB} GiB free at the start)`,
    `- load average at the start: ${m.loadAverage.join(' / ')} (1 / 5 / 15 min)`,
    `- Node ${m.node}, Temporal TypeScript SDK ${m.temporalSdk}`,
    `- OS: ${m.os}`,
    ...(m.note ? [`- note: ${m.note}`] : []),
  ].join('\n');
}

export function resultMarkdown(result: BenchResult, machine: MachineInfo): string {
  const params = Object.entries(result.parameters).map(([k, v]) => `- ${k}: ${String(v)}`);
  return [
    `# ${result.title}`,
    '',
    `Written by \`npm run bench -- ${result.name}\`${result.durationMs ? ` in ${Math.round(result.durationMs / 1000)} s` : ''}. Ratio = kloros-healing ÷ ${result.baselineLabel}.`,
    '',
    markdownTable(result),
    '',
    '## Parameters',
    '',
    ...params,
    '',
    '## Machine',
    '',
    machineMarkdown(machine),
    ...(result.notes.length ? ['', '## Notes', '', ...result.notes.map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
}

export async function writeResult(dir: string, result: BenchResult, machine: MachineInfo): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const md = join(dir, `${result.name}.md`);
  const json = join(dir, `${result.name}.json`);
  await writeFile(md, resultMarkdown(result, machine));
  const rows = result.rows.map((r) => ({ ...r, ratio: ratioOf(r) }));
  await writeFile(json, `${JSON.stringify({ ...result, rows, machine }, null, 2)}\n`);
  return [md, json];
}
