// The PromQL a Grafana dashboard runs: every panel target's (and annotation's) `expr`, with Grafana's
// variables replaced by values a test can run against a real Prometheus.

export interface DashboardQuery {
  /** Panels show series; an annotation query marks events, and is empty when none happened. */
  source: 'panel' | 'annotation';
  /** Where it comes from: "panel <title>" or "annotation <name>". */
  where: string;
  expr: string;
}

interface GrafanaTarget {
  expr?: string;
  hide?: boolean;
}

interface GrafanaPanel {
  title?: string;
  type?: string;
  targets?: GrafanaTarget[];
  panels?: GrafanaPanel[];
}

export interface GrafanaVariable {
  name: string;
  type: string;
  query?: string | { query?: string };
  current?: { value?: string | string[] };
  options?: { value?: string }[];
}

export interface GrafanaDashboard {
  panels?: GrafanaPanel[];
  templating?: { list?: GrafanaVariable[] };
  annotations?: { list?: { name?: string; expr?: string; target?: { expr?: string } }[] };
}

/** Every query of the dashboard, rows' nested panels included; hidden targets too (they still run). */
export function dashboardQueries(dashboard: GrafanaDashboard): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  const walk = (panels: GrafanaPanel[] | undefined) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? [])
        if (t.expr && t.expr.trim() !== '')
          out.push({ source: 'panel', where: `panel "${p.title ?? p.type ?? '?'}"`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const a of dashboard.annotations?.list ?? []) {
    const expr = a.expr ?? a.target?.expr;
    if (expr && expr.trim() !== '')
      out.push({ source: 'annotation', where: `annotation "${a.name ?? '?'}"`, expr });
  }
  return out;
}

/** Grafana's built-in intervals, as a dashboard over the last 15 minutes with a 1 s scrape would get them. */
export const BUILTIN_VALUES: Record<string, string> = {
  __rate_interval: '1m',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '15m',
  __range_s: '900',
  __range_ms: '900000',
};

/** The PromQL text of a `label_values(metric, label)` / `label_values(label)` variable, else null. */
export function labelValuesQuery(v: GrafanaVariable): { metric: string | null; label: string } | null {
  const text = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
  const m = /^\s*label_values\(\s*(?:([^,]+?)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$/.exec(text);
  if (!m) return null;
  return { metric: m[1] ?? null, label: m[2]! };
}

/** Replace `$name`, `${name}`, `${name:format}` and `[[name]]` with the given values (longest names first). */
export function substituteVariables(expr: string, values: Record<string, string>): string {
  let out = expr;
  for (const name of Object.keys(values).sort((a, b) => b.length - a.length)) {
    const value = values[name]!;
    const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    out = out
      .replace(new RegExp(`\\$\\{${esc}(?::[a-zA-Z]+)?\\}`, 'g'), value)
      .replace(new RegExp(`\\[\\[${esc}\\]\\]`, 'g'), value)
      .replace(new RegExp(`\\$${esc}(?![a-zA-Z0-9_])`, 'g'), value);
  }
  return out;
}

/** Variables still left in a query after substitution (a test should name them). */
export function unresolvedVariables(expr: string): string[] {
  return [...expr.matchAll(/\$\{?([a-zA-Z_][a-zA-Z0-9_]*)|\[\[([a-zA-Z_][a-zA-Z0-9_]*)\]\]/g)].map(
    (m) => m[1] ?? m[2] ?? '',
  );
}
