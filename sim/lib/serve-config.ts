// `vllm serve [model] --config FILE [--key value ...]`: the YAML keys and flags that matter to the
// simulator, with vLLM's defaults. Command-line flags win over the file, as in vLLM. Keys are accepted with
// dashes or underscores; keys the simulator does not model are accepted and ignored.
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { ModelProfile, ServingConfig } from '../../src/domain/vllm-memory-model.js';
import { pyFloat } from './format.js';

export interface SimModelProfile extends ModelProfile {
  architecture: string;
  /** max_position_embeddings from config.json: the default and the limit of max-model-len. */
  maxPositionEmbeddings: number | null;
}

export interface ServeConfig {
  configPath: string | null;
  model: string;
  servedModelNames: [string, ...string[]];
  host: string | null;
  port: number;
  serving: ServingConfig;
  /** Settings given explicitly, in vLLM's snake_case, for the "non-default args" line. */
  explicit: Record<string, unknown>;
}

/** A command-line/config error; vLLM (argparse) prints usage and the message and exits 2. */
export class ArgError extends Error {}

export const KV_CACHE_DTYPES = ['auto', 'fp8', 'fp8_e4m3', 'fp8_e5m2'] as const;
type KvCacheDtype = (typeof KV_CACHE_DTYPES)[number];

const BOOLEAN_FLAGS = new Set(['enforce-eager']);

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ArgError(`${what} must be a mapping of keys to values`);
  }
  return value as Record<string, unknown>;
}

export function loadModelProfile(path: string): SimModelProfile {
  if (!existsSync(path)) throw new ArgError(`model profile ${path} does not exist (SIM_MODEL_PROFILE)`);
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8')); // YAML is a superset of JSON
  } catch (e) {
    throw new ArgError(`model profile ${path} is not valid JSON/YAML: ${(e as Error).message}`);
  }
  const o = asObject(raw, `model profile ${path}`);
  const num = (key: keyof ModelProfile): number => {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new ArgError(
        `model profile ${path}: "${key}" must be a positive number, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  };
  const name = o.name;
  if (typeof name !== 'string' || name === '')
    throw new ArgError(`model profile ${path}: "name" must be a string`);
  const maxPos = o.maxPositionEmbeddings;
  return {
    name,
    architecture: typeof o.architecture === 'string' ? o.architecture : 'LlamaForCausalLM',
    layers: num('layers'),
    attentionHeads: num('attentionHeads'),
    kvHeads: num('kvHeads'),
    headDim: num('headDim'),
    hiddenSize: num('hiddenSize'),
    intermediateSize: num('intermediateSize'),
    vocabSize: num('vocabSize'),
    dtypeBytes: num('dtypeBytes'),
    weightsMb: num('weightsMb'),
    maxPositionEmbeddings: typeof maxPos === 'number' && maxPos > 0 ? maxPos : null,
  };
}

const norm = (key: string) => key.replace(/^--/, '').replace(/_/g, '-');
const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

function toInt(key: string, v: unknown, min: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw new ArgError(`argument --${key}: invalid int value: '${show(v)}'`);
  if (n < min) throw new ArgError(`argument --${key}: must be at least ${min}, got ${n}`);
  return n;
}

function toFloat(key: string, v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw new ArgError(`argument --${key}: invalid float value: '${show(v)}'`);
  return n;
}

function toBool(key: string, v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|1|yes)$/i.test(v.trim())) return true;
  if (typeof v === 'string' && /^(false|0|no)$/i.test(v.trim())) return false;
  throw new ArgError(`argument --${key}: expected true or false, got '${show(v)}'`);
}

function toStr(key: string, v: unknown): string {
  if (typeof v === 'string' && v !== '') return v;
  if (typeof v === 'number') return String(v);
  throw new ArgError(`argument --${key}: expected a string, got '${show(v)}'`);
}

/** Splits argv into the positional model and --key value pairs (later pairs win). */
function parseArgv(argv: string[]): { model: string | null; pairs: [string, unknown][] } {
  let model: string | null = null;
  const pairs: [string, unknown][] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) {
      if (model !== null) throw new ArgError(`unrecognized arguments: ${arg}`);
      model = arg;
      continue;
    }
    const eq = arg.indexOf('=');
    const key = norm(eq >= 0 ? arg.slice(0, eq) : arg);
    if (eq >= 0) {
      pairs.push([key, arg.slice(eq + 1)]);
    } else if (BOOLEAN_FLAGS.has(key)) {
      pairs.push([key, true]);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--'))
        throw new ArgError(`argument --${key}: expected one argument`);
      pairs.push([key, next]);
      i++;
    }
  }
  return { model, pairs };
}

export function parseServeArgs(argv: string[], profile: SimModelProfile, gpuTotalMb: number): ServeConfig {
  const cli = parseArgv(argv);
  const configPair = cli.pairs.find(([k]) => k === 'config');
  const configPath = configPair ? toStr('config', configPair[1]) : null;
  const values = new Map<string, unknown>();
  if (configPath !== null) {
    if (!existsSync(configPath))
      throw new ArgError(`argument --config: config file ${configPath} does not exist`);
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(configPath, 'utf8'));
    } catch (e) {
      throw new ArgError(
        `argument --config: unable to read config file ${configPath}: ${(e as Error).message}`,
      );
    }
    for (const [k, v] of Object.entries(asObject(doc ?? {}, `config file ${configPath}`)))
      values.set(norm(k), v);
  }
  for (const [k, v] of cli.pairs) if (k !== 'config') values.set(k, v);
  if (cli.model !== null) values.set('model', cli.model);

  const explicit: Record<string, unknown> = {};
  if (cli.model !== null) explicit.model_tag = cli.model;
  if (configPath !== null) explicit.config = configPath;
  const take = <T>(key: string, conv: (key: string, v: unknown) => T, def: T): T => {
    if (!values.has(key)) return def;
    const v = conv(key, values.get(key));
    explicit[key.replace(/-/g, '_')] = conv === (toFloat as unknown) ? new PyFloatValue(v as number) : v;
    return v;
  };

  const host = take('host', toStr, null as string | null);
  const port = take('port', (k, v) => toInt(k, v, 0), 8000);
  if (port > 65535) throw new ArgError(`argument --port: invalid port ${port}`);
  const model = take('model', toStr, profile.name);
  const served = take(
    'served-model-name',
    (k, v): string[] => (Array.isArray(v) ? v.map((x) => toStr(k, x)) : [toStr(k, v)]),
    [] as string[],
  );
  const largeGpu = gpuTotalMb >= 70 * 1024;
  const serving: ServingConfig = {
    gpuMemoryUtilization: take('gpu-memory-utilization', toFloat, 0.9),
    maxModelLen: take('max-model-len', (k, v) => toInt(k, v, 1), profile.maxPositionEmbeddings ?? 8192),
    maxNumBatchedTokens: take('max-num-batched-tokens', (k, v) => toInt(k, v, 1), largeGpu ? 8192 : 2048),
    maxNumSeqs: take('max-num-seqs', (k, v) => toInt(k, v, 1), 256),
    kvCacheDtype: take(
      'kv-cache-dtype',
      (k, v): KvCacheDtype => {
        const s = toStr(k, v);
        if (!(KV_CACHE_DTYPES as readonly string[]).includes(s)) {
          throw new ArgError(
            `argument --${k}: invalid choice: '${s}' (choose from ${KV_CACHE_DTYPES.map((d) => `'${d}'`).join(', ')})`,
          );
        }
        return s as KvCacheDtype;
      },
      'auto',
    ),
    enforceEager: take('enforce-eager', toBool, false),
    tensorParallelSize: take('tensor-parallel-size', (k, v) => toInt(k, v, 1), 1),
  };
  const [first, ...rest] = served.length > 0 ? served : [model];
  return {
    configPath,
    model,
    servedModelNames: [first ?? model, ...rest],
    host,
    port,
    serving,
    explicit,
  };
}

/** A number Python holds as a float (printed "1.0", not "1"). */
export class PyFloatValue {
  constructor(readonly value: number) {}
}

/** Python's repr of the simple values in the "non-default args" line. */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (v instanceof PyFloatValue) return pyFloat(v.value);
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`)
      .join(', ')}}`;
  }
  return typeof v === 'bigint' ? v.toString() : 'None';
}
