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

/** The second service's config: leaves 8 GiB of headroom on its H100, more than a request burst needs. */
export const FITTING_SERVING = {
  'gpu-memory-utilization': 0.9,
  'max-model-len': 8192,
} as const;

/** Simulated GPUs on the demo's host (an 8-GPU node); the two services use GPUs 0 and 1. */
export const DEMO_GPU_COUNT = 8;

/** One simulated vLLM service of the demo host. */
export interface DemoServicePlan {
  /** Its name in the services file, part of its workflow ids (the legacy one's ids have none). */
  name: string;
  model: string;
  servedModel: string;
  /** sim/models/<file>. */
  profileFile: string;
  gpu: number;
  serving: Readonly<Record<string, number>>;
  /** SIM_LOAD: background requests per second. */
  load: number;
  /** Continues the single-service workflows of earlier demos (kloros-healing/<host>/<kind>). */
  legacyIds: boolean;
  /** What it is in the demo, for the start-up lines. */
  role: string;
}

/**
 * The demo host's services: "llama" runs out of memory and is healed (its ids are the single-service ids
 * an earlier demo's data folder holds); "qwen", on its own GPU with a config that fits, must stay untouched.
 */
export const DEMO_SERVICES: readonly [DemoServicePlan, DemoServicePlan] = [
  {
    name: 'llama',
    model: 'meta-llama/Llama-3.1-8B-Instruct',
    servedModel: 'llama-3.1-8b',
    profileFile: 'llama-3.1-8b.json',
    gpu: 0,
    serving: AGGRESSIVE_SERVING,
    load: 1,
    legacyIds: true,
    role: 'runs out of GPU memory under load: to be healed',
  },
  {
    name: 'qwen',
    model: 'Qwen/Qwen2.5-7B-Instruct',
    servedModel: 'qwen2.5-7b',
    profileFile: 'qwen2.5-7b.json',
    gpu: 1,
    serving: FITTING_SERVING,
    load: 0.5,
    legacyIds: false,
    role: 'fits: to be left alone',
  },
];

/** The worker settings the demo overrides, with the production defaults beside them. */
export function demoSettings(window: DemoWindow, servicesFile = '<data>/demo/services.yaml'): DemoSetting[] {
  return [
    {
      variable: 'KLR_SERVICES_FILE',
      demo: servicesFile,
      production: 'unset',
      why: `${DEMO_SERVICES.map((s) => s.name).join(' and ')} on one host`,
    },
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
  for (const s of demoSettings(window)) if (s.variable !== 'KLR_SERVICES_FILE') env[s.variable] = s.demo;
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
