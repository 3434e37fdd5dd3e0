// The services one GPU host runs (docs/deployment.md, "Several services on one host"): a YAML file named by
// KLR_SERVICES_FILE, or — the one-service shortcut every earlier release used — the KLR_SERVICE_* settings.
// Each entry is checked field by field; an error names the file, the entry (index and name) and the field,
// and says what is expected. Names become part of workflow ids, so they are checked like host names.
import { closeSync, openSync, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { SettingsError, duration } from '../config/settings.js';
import { SERVICE_EXPECTED, isValidService } from '../domain/identifiers.js';
import type { GpuRef } from '../domain/service-vram.js';
import {
  type ServiceSettings,
  loadCandidateFloors,
  loadProbeSizeSettings,
  loadServiceDefaults,
  commandArgv,
  httpUrl,
  loadServiceSettings,
} from './service-settings.js';

/** One GPU of a service, as CUDA_VISIBLE_DEVICES names it: an index, or a UUID (`GPU-…`, `MIG-…`). */
export type { GpuRef };

/** Where a service's log comes from: a file it appends to, or a command that prints it (journalctl -f). */
export type ServiceLogSource = { file: string } | { command: [string, ...string[]] } | null;

export interface ServiceSpec {
  /** The service's name: part of its workflow ids (kloros-healing/<host>/<service>/<kind>). */
  name: string;
  /** What the adapter needs: config, restart command, URL, log file, model, backups. */
  settings: ServiceSettings;
  /** Its log as the observer follows it (a file is also the soak's log; a command is the observer's only). */
  log: ServiceLogSource;
  /** The GPUs it owns (CUDA_VISIBLE_DEVICES); null: every GPU of the host (the one-service shortcut). */
  gpus: GpuRef[] | null;
  /** A model profile that wins over the model's config.json (KLR_MODEL_PROFILE for the shortcut). */
  modelProfilePath: string | null;
  /**
   * This service continues the workflows of a single-service release, whose ids do not name a service
   * (kloros-healing/<host>/<kind>): at most one per host; the shortcut's one service always does.
   */
  legacyIds: boolean;
}

/** The default name of the one service the KLR_SERVICE_* shortcut describes (KLR_SERVICE_NAME). */
export const DEFAULT_SERVICE_NAME = 'vllm';
/** More services than this on one host is a mistake in the file, not a GPU host (16 GPUs × MIG halves). */
export const MAX_SERVICES = 64;
/**
 * 64 entries take some 10 kB: a larger file is a mistake, refused before it is parsed (parsing a few MB of
 * entries or of nesting takes seconds; 256 KiB at most about one).
 */
export const MAX_SERVICES_FILE_BYTES = 256 * 1024;

type Env = Record<string, string | undefined>;

/** A services file that cannot be used: where (file, entry, field) and what is expected. */
export class ServicesFileError extends Error {
  override name = 'ServicesFileError';
}

// MIG-GPU-<uuid>/<gi>/<ci>: the MIG form of drivers before R470, which CUDA_VISIBLE_DEVICES still takes there.
const GPU_UUID = /^(?:GPU-|MIG-(?:GPU-)?)[0-9A-Fa-f]{4,}(?:-[0-9A-Fa-f]+)*(?:\/\d+\/\d+)?$/;
const GPU_EXPECTED =
  'a list of GPUs as CUDA_VISIBLE_DEVICES names them: indices 0-1023 or UUIDs such as GPU-5f3c2a1e-8d4b-… (nvidia-smi -L), e.g. [0, 1] or "0,1"';

const gpuRef = z.union([
  z.number().int().min(0).max(1023),
  z
    .string()
    .trim()
    .transform((s) => (/^\d+$/.test(s) ? Number(s) : s))
    .pipe(z.union([z.number().int().min(0).max(1023), z.string().regex(GPU_UUID)])),
]);

const gpuList = z
  .preprocess((v) => (typeof v === 'string' ? v.split(',') : v), z.array(gpuRef).min(1))
  .refine((list) => new Set(list.map(String)).size === list.length, 'a GPU is listed twice');

const argv = commandArgv.max(256);

const FIELDS = {
  name: `${SERVICE_EXPECTED}`,
  config: 'the path of the vLLM YAML config the service runs with (vllm serve --config FILE)',
  restart:
    'the command that restarts the service, as a list of strings (never run through a shell), e.g. ["systemctl", "restart", "vllm@llama"]',
  restartTimeout: 'a duration such as 10m or 600 (bare numbers are seconds), 1s to 1h, whole seconds',
  url: "the service's base URL, http(s)://host:port without a query, e.g. http://127.0.0.1:8001",
  log: 'the service log: {file: PATH} or {command: [ARGV…]} (e.g. {command: ["journalctl", "-fu", "vllm@llama", "-o", "cat"]})',
  gpus: GPU_EXPECTED,
  model:
    'the model name the canary probe asks for (leave it out for the config’s served-model-name or model)',
  modelProfile: 'the path of a model profile file (docs/prediction.md)',
  legacyIds: 'true or false: whether this service continues the workflows of a single-service release',
} as const;

const entrySchema = z.strictObject({
  name: z.string().refine(isValidService),
  config: z.string().trim().min(1),
  restart: argv,
  restartTimeout: z
    .union([z.number().int().transform(String), z.string()])
    .pipe(duration({ min: 1, max: 3600, bare: 's', whole: true }))
    .optional(),
  url: httpUrl,
  log: z
    .union([
      z.strictObject({ file: z.string().trim().min(1) }),
      z.strictObject({ command: argv }),
      z
        .string()
        .trim()
        .min(1)
        .transform((file) => ({ file })),
    ])
    .optional(),
  gpus: gpuList,
  model: z.string().trim().min(1).max(512).optional(),
  modelProfile: z.string().trim().min(1).optional(),
  legacyIds: z.boolean().optional(),
});

const fileSchema = z.strictObject({ services: z.array(z.unknown()).min(1).max(MAX_SERVICES) });

function describeEntry(raw: unknown, index: number): string {
  const name = typeof raw === 'object' && raw !== null ? (raw as { name?: unknown }).name : undefined;
  if (typeof name !== 'string') return `services[${index}]`;
  // Beyond printable ASCII escaped: a Cyrillic look-alike or a zero-width space in a name is seen, not guessed.
  const shown = JSON.stringify(name.slice(0, 80)).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return `services[${index}] (${shown})`;
}

/** The first issue of a zod failure as "field "x": expected …". */
function fieldProblem(error: z.ZodError): string {
  const issue = error.issues[0];
  const key = issue?.path[0];
  if (issue?.code === 'unrecognized_keys' && issue.path.length === 0) {
    const keys = (issue as { keys?: string[] }).keys ?? [];
    return `unknown field ${keys.map((k) => JSON.stringify(k)).join(', ')}: expected only ${Object.keys(FIELDS).join(', ')}`;
  }
  if (issue?.path.length === 0)
    return `expected a mapping of the fields name, config, restart, url and gpus (and optionally ${Object.keys(
      FIELDS,
    )
      .filter((k) => !['name', 'config', 'restart', 'url', 'gpus'].includes(k))
      .join(', ')})`;
  if (typeof key !== 'string' || !(key in FIELDS)) return issue?.message ?? 'not a service entry';
  const extra = issue?.message && key === 'gpus' && /twice/.test(issue.message) ? ` (${issue.message})` : '';
  return `field "${key}"${extra}: expected ${FIELDS[key as keyof typeof FIELDS]}`;
}

/** The services of a YAML text; `source` names it in errors, relative paths resolve against `baseDir`. */
export function parseServicesFile(
  text: string,
  source: string,
  defaults: { restartTimeoutMs: number; backupDir: string; baseDir: string },
): ServiceSpec[] {
  if (text.length > MAX_SERVICES_FILE_BYTES || Buffer.byteLength(text) > MAX_SERVICES_FILE_BYTES)
    throw new ServicesFileError(
      `services file ${source}: larger than ${MAX_SERVICES_FILE_BYTES / 1024} KiB; expected a list of at most ${MAX_SERVICES} short entries (docs/deployment.md)`,
    );
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ServicesFileError(`services file ${source}: not valid YAML (${e.message.split('\n')[0]})`);
  }
  // maxAliasCount bounds a billion-laughs file: its aliases would otherwise expand without end.
  let js: unknown;
  try {
    js = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ServicesFileError(
      `services file ${source}: not usable YAML (${(err as Error).message.split('\n')[0]})`,
    );
  }
  const top = fileSchema.safeParse(js);
  if (!top.success) {
    throw new ServicesFileError(
      `services file ${source}: expected a mapping with "services:", a list of 1-${MAX_SERVICES} entries (docs/deployment.md)`,
    );
  }
  // resolve() also normalises absolute paths, so /etc/vllm/./a.yaml and /etc/vllm/a.yaml are one config.
  const at = (p: string) => resolve(defaults.baseDir, p);
  const specs = top.data.services.map((raw, index): ServiceSpec => {
    const parsed = entrySchema.safeParse(raw);
    if (!parsed.success)
      throw new ServicesFileError(
        `services file ${source}: ${describeEntry(raw, index)}: ${fieldProblem(parsed.error)}`,
      );
    const e = parsed.data;
    const log: ServiceLogSource =
      e.log === undefined
        ? null
        : 'file' in e.log
          ? { file: at(e.log.file) }
          : { command: e.log.command as [string, ...string[]] };
    const [file, ...args] = e.restart;
    return {
      name: e.name,
      settings: {
        configPath: at(e.config),
        restartCommand: [file as string, ...args],
        restartTimeoutMs:
          e.restartTimeout !== undefined ? e.restartTimeout * 1000 : defaults.restartTimeoutMs,
        baseUrl: e.url,
        logPath: log !== null && 'file' in log ? log.file : null,
        model: e.model ?? null,
        // A legacy service keeps the backups and promotion record of its single-service release.
        backupDir: e.legacyIds ? defaults.backupDir : resolve(defaults.backupDir, e.name),
      },
      log,
      gpus: e.gpus,
      modelProfilePath: e.modelProfile ? at(e.modelProfile) : null,
      legacyIds: e.legacyIds ?? false,
    };
  });
  const dup = (what: string, key: (s: ServiceSpec) => string) => {
    const seen = new Map<string, string>();
    for (const s of specs) {
      const k = key(s);
      const other = seen.get(k);
      if (other !== undefined)
        throw new ServicesFileError(
          `services file ${source}: services "${other}" and "${s.name}" have the same ${what} (${k}); each service needs its own`,
        );
      seen.set(k, s.name);
    }
  };
  dup('name', (s) => s.name);
  dup('config file', (s) => s.settings.configPath);
  dup('URL', (s) => new URL(s.settings.baseUrl).href.replace(/\/+$/, ''));
  const legacy = specs.filter((s) => s.legacyIds);
  if (legacy.length > 1)
    throw new ServicesFileError(
      `services file ${source}: legacyIds is true on ${legacy.map((s) => `"${s.name}"`).join(' and ')}; at most one service can continue the single-service workflows`,
    );
  return specs;
}

/** At most `max` bytes of a file as UTF-8 (never all of /dev/zero or a file of gigabytes). */
function readBounded(path: string, max: number): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(max);
    let n = 0;
    for (let got = -1; got !== 0 && n < max; n += got) got = readSync(fd, buf, n, max - n, null);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * The host's services: from KLR_SERVICES_FILE, or the one service of KLR_SERVICE_* (named KLR_SERVICE_NAME,
 * default "vllm", on every GPU, continuing the single-service workflows), or none (VRAM measurement only).
 */
export function loadServices(env: Env = process.env): ServiceSpec[] {
  const file = env.KLR_SERVICES_FILE?.trim();
  const name = env.KLR_SERVICE_NAME?.trim() || DEFAULT_SERVICE_NAME;
  if (!isValidService(name)) throw new SettingsError('KLR_SERVICE_NAME', name, SERVICE_EXPECTED);
  if (file) {
    if (env.KLR_SERVICE_CONFIG?.trim())
      throw new SettingsError(
        'KLR_SERVICE_CONFIG',
        env.KLR_SERVICE_CONFIG,
        'unset when KLR_SERVICES_FILE is set: the services file lists every service with its config',
      );
    const path = resolve(file);
    let text: string;
    try {
      text = readBounded(path, MAX_SERVICES_FILE_BYTES + 1);
    } catch (err) {
      throw new ServicesFileError(
        `services file ${path} (KLR_SERVICES_FILE): cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    // KLR_SERVICE_RESTART_TIMEOUT and KLR_BACKUP_DIR still give the defaults every entry may override;
    // the candidate floors and probe size settings, where set, hold for every service of the host.
    const floors = loadCandidateFloors(env);
    const probe = loadProbeSizeSettings(env);
    return parseServicesFile(text, path, { ...loadServiceDefaults(env), baseDir: dirname(path) }).map(
      (spec) => ({ ...spec, settings: { ...spec.settings, candidateFloors: floors, probe } }),
    );
  }
  if (!env.KLR_SERVICE_CONFIG?.trim()) return [];
  const settings = loadServiceSettings(env);
  const profile = env.KLR_MODEL_PROFILE?.trim();
  const log: ServiceLogSource = settings.logPath ? { file: settings.logPath } : null;
  return [
    {
      name,
      settings,
      log,
      gpus: null,
      modelProfilePath: profile ? resolve(profile) : null,
      legacyIds: true,
    },
  ];
}

/** The service part of a service's workflow ids: null for the legacy service (ids without one). */
export function workflowService(spec: Pick<ServiceSpec, 'name' | 'legacyIds'>): string | null {
  return spec.legacyIds ? null : spec.name;
}

/**
 * The workflow-id service of a symptom labelled `label` (or unlabelled: null) on a host with `services`:
 * an unlabelled symptom goes to the legacy service's workflows (a one-service host: its only service); a
 * label must name a configured service when any are configured. Without a services list (a door that
 * knows none) a label is taken as it is. Returns an error text that names the choices when it cannot route.
 */
export function routeService(
  services: readonly Pick<ServiceSpec, 'name' | 'legacyIds'>[],
  label: string | null,
): { ok: true; service: string | null } | { ok: false; error: string } {
  const names = services.map((s) => `"${s.name}"`).join(', ');
  if (label === null) {
    if (services.length === 0 || services.some((s) => s.legacyIds)) return { ok: true, service: null };
    if (services.length === 1) return { ok: true, service: workflowService(services[0]!) };
    return {
      ok: false,
      error: `no service named: this host runs several (${names}); expected a service label naming one of them`,
    };
  }
  if (!isValidService(label))
    return { ok: false, error: `service ${JSON.stringify(label)}: expected ${SERVICE_EXPECTED}` };
  if (services.length === 0) return { ok: true, service: label };
  const spec = services.find((s) => s.name === label);
  if (!spec) return { ok: false, error: `unknown service "${label}": this host runs ${names}` };
  return { ok: true, service: workflowService(spec) };
}
