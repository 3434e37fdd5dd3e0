// What makes the demo a demo: the settings that differ from production so that a whole healing cycle
// (OOMs → escalation → window → canary → promotion) fits in about two minutes. Pure: the caller passes
// the clock and the zone.
import { formatLocalTime } from '../../src/domain/maintenance-window.js';
import { DEFAULT_POLICY } from '../../src/domain/policy.js';

const MINUTE = 60_000;

/** How long after the worker starts the demo's window opens, at least (it opens on a minute boundary). */
export const WINDOW_LEAD_MS = 40_000;

export interface DemoWindow {
  /** `HH:MM-HH:MM` in `timeZone`, one hour long. */
  text: string;
  timeZone: string;
  opensAt: number;
}

/** A window that opens on the first minute boundary at least `leadMs` from `nowMs`, for an hour. */
export function demoWindow(nowMs: number, timeZone: string, leadMs = WINDOW_LEAD_MS): DemoWindow {
  const opensAt = Math.ceil((nowMs + leadMs) / MINUTE) * MINUTE;
  const closesAt = opensAt + 60 * MINUTE;
  return {
    text: `${formatLocalTime(opensAt, timeZone)}-${formatLocalTime(closesAt, timeZone)}`,
    timeZone,
    opensAt,
  };
}

export interface DemoSetting {
  variable: string;
  demo: string;
  production: string;
  why: string;
}

/** The vLLM config the demo starts from: too much GPU memory for the simulated H100 under load. */
export const AGGRESSIVE_SERVING = {
  'gpu-memory-utilization': 0.98,
  'max-model-len': 8192,
  'max-num-seqs': 256,
} as const;

/** The worker settings the demo overrides, with the production defaults beside them. */
export function demoSettings(window: DemoWindow): DemoSetting[] {
  return [
    {
      variable: 'KLR_GPU_MAINTENANCE_WINDOW',
      demo: `${window.text} (${window.timeZone})`,
      production: DEFAULT_POLICY.maintenanceWindow,
      why: 'opens about a minute from now',
    },
    {
      variable: 'KLR_SYMPTOM_THRESHOLD_24H',
      demo: '3',
      production: String(DEFAULT_POLICY.threshold24h),
      why: 'three OOMs arm the escalation',
    },
    {
      variable: 'KLR_CANARY_COOLDOWN_HOURS',
      demo: '0.02',
      production: String(DEFAULT_POLICY.cooldownHours),
      why: 'about a minute between canaries',
    },
    {
      variable: 'KLR_CANARY_SOAK_SECONDS',
      demo: '5',
      production: String(DEFAULT_POLICY.soakSeconds),
      why: 'watch the candidate 5 s',
    },
    {
      variable: 'KLR_ESCALATION_FLAG_TTL',
      demo: '900',
      production: String(DEFAULT_POLICY.escalationFlagTtlSeconds),
      why: 'the flag lapses after 15 min',
    },
    {
      variable: 'KLR_PREDICT_INTERVAL',
      demo: '10',
      production: String(DEFAULT_POLICY.predictIntervalSeconds),
      why: 'predict again after 10 s',
    },
  ];
}

/** The settings as environment variables (the window without its zone, which has its own variable). */
export function demoSettingsEnv(window: DemoWindow): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of demoSettings(window)) env[s.variable] = s.demo;
  env.KLR_GPU_MAINTENANCE_WINDOW = window.text;
  env.KLR_GPU_MAINTENANCE_TZ = window.timeZone;
  return env;
}

/** A plain-text table of the settings. */
export function settingsTable(rows: DemoSetting[]): string[] {
  const head: DemoSetting = { variable: 'setting', demo: 'demo', production: 'default', why: '' };
  const all = [head, ...rows];
  const w = (k: keyof DemoSetting) => Math.max(...all.map((r) => r[k].length));
  const line = (r: DemoSetting) =>
    `${r.variable.padEnd(w('variable'))}  ${r.demo.padEnd(w('demo'))}  ${r.production.padEnd(w('production'))}  ${r.why}`.trimEnd();
  return all.map(line);
}
