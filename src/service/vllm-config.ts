// The service's vLLM config file, read as `vllm serve --config FILE` reads it, and edited in place.
//
// vLLM loads the file with PyYAML (YAML 1.1: `yes`/`no` are booleans) and turns every top-level key into the
// command-line option `--key value`; its parser accepts `_` and `-` alike in option names. So the keys are the
// long CLI option names, in either spelling: `gpu-memory-utilization` or `gpu_memory_utilization`. Values
// reach argparse as text, which is why a quoted number ("8192") is as good as a plain one.
//
// Reading normalises keys to the dashed spelling. Editing (applyChanges) rewrites only the value text of
// the keys it changes, in the spelling the file already uses, so every other byte (comments, blank lines,
// order, quoting) stays as it was; a key the file does not have is appended in the file's own style.
import { readFileSync } from 'node:fs';
import { type Document, LineCounter, type ParsedNode, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { SERVING_KEYS, type ServingConfig, type ServingKey } from '../domain/vllm-memory-model.js';
import { type GpuHint, type VllmRelease, batchDefaultsFor, releaseRules } from '../domain/vllm-release.js';

export { SERVING_KEYS, type ServingKey };

/** A config file that cannot be read as vLLM would, or a value vLLM would reject. */
export class ServingConfigError extends Error {
  constructor(
    message: string,
    /** The dashed key at fault, when one is. */
    readonly key: string | null = null,
    /** 1-based line of the fault, when known. */
    readonly line: number | null = null,
  ) {
    super(message);
    this.name = 'ServingConfigError';
  }
}

export const KV_CACHE_DTYPES = ['auto', 'fp8', 'fp8_e4m3', 'fp8_e5m2'] as const;

/** vLLM's defaults that do not depend on the GPU or the model. */
export const VLLM_DEFAULTS = {
  gpuMemoryUtilization: 0.9,
  kvCacheDtype: 'auto',
  enforceEager: false,
  tensorParallelSize: 1,
  /** vLLM's fallback max_model_len when config.json names no length. */
  maxModelLen: 2048,
} as const;

/**
 * What the defaults depend on: the GPU (vLLM picks max-num-batched-tokens and max-num-seqs by its size and
 * name) and the release (src/domain/vllm-release.ts batchDefaultsFor: V0 by max-model-len, V1 by GPU,
 * changing with releases; the default utilization is 0.92 from 0.20). Unknown → today's V1 rule and 0.9.
 */
export interface BatchDefaultsHint extends GpuHint {
  /** The release the service runs, when known (its log banner or /version). */
  release?: VllmRelease | null;
}

/** max-num-batched-tokens and max-num-seqs vLLM takes when the config leaves them out. */
export function batchDefaults(
  hint: BatchDefaultsHint,
  maxModelLen: number,
  chunkedPrefill: boolean | undefined,
): { maxNumBatchedTokens: number; maxNumSeqs: number } {
  const d = batchDefaultsFor(hint.release ?? null, hint, maxModelLen, chunkedPrefill);
  return { maxNumBatchedTokens: d.maxNumBatchedTokens, maxNumSeqs: d.maxNumSeqs };
}

export interface ServingConfigOptions extends BatchDefaultsHint {
  /** The model's max_position_embeddings: vLLM's default max-model-len. */
  maxPositionEmbeddings?: number | null;
}

export interface ServingConfigFile {
  /** Where it was read from (for messages). */
  source: string;
  text: string;
  /** The parsed YAML document (comments and all). */
  raw: Document.Parsed;
  /** Every top-level key, dashed, with its value as YAML gives it. */
  values: Record<string, unknown>;
  /** The spelling each dashed key has in the file. */
  spelling: Record<string, string>;
  /** Whether the file writes its keys with underscores (new keys follow it). */
  keyStyle: 'dash' | 'underscore';
  serving: ServingConfig;
  /** The serving keys the file sets; the others are vLLM's defaults. */
  explicit: ServingKey[];
  /** `model:`; null when the file leaves it to the command line (`vllm serve MODEL --config FILE`). */
  model: string | null;
  /** The first `served-model-name`, null when absent (vLLM then serves it under `model`). */
  servedModelName: string | null;
  port: number | null;
  /** `dtype:` (auto, bfloat16, float16, float32, ...), null when absent. */
  dtype: string | null;
}

export const dashed = (key: string): string => key.replace(/^--/, '').replace(/_/g, '-');

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : String(JSON.stringify(v)));

interface Located {
  key: string;
  spelling: string;
  value: unknown;
  line: number;
}

function fail(source: string, at: Located | null, expected: string): never {
  const where = at ? `${source}:${at.line}` : source;
  const key = at ? at.key : null;
  throw new ServingConfigError(
    `${where}: ${at ? `${at.spelling}: ` : ''}expected ${expected}${at ? `, got ${show(at.value)}` : ''}`,
    key,
    at?.line ?? null,
  );
}

/** vLLM's human-readable ints: 32768, "32k" (×1000), "32K" (×1024), "1M", "1.5k". */
function toInt(source: string, at: Located, min: number, humanReadable: boolean): number {
  const v = at.value;
  let n = NaN;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const s = v.trim();
    const m = humanReadable ? /^(\d+(?:\.\d+)?)([kKmMgG])$/.exec(s) : null;
    if (m) {
      const unit = m[2] ?? '';
      const power = { k: 1, m: 2, g: 3 }[unit.toLowerCase() as 'k' | 'm' | 'g'];
      const base = unit === unit.toLowerCase() ? 1000 : 1024;
      n = Number(m[1]) * base ** power;
    } else if (/^[+-]?\d+$/.test(s)) n = Number(s);
  }
  const what = `a whole number ≥ ${min}${humanReadable ? ' (or 32k / 32K)' : ''}`;
  // Beyond 2^53 a number is no longer a whole count (1e99 passes isInteger): a unit or typing mistake.
  if (!Number.isSafeInteger(n) || n < min) fail(source, at, what);
  return n;
}

function toFloat(source: string, at: Located, expected: string, ok: (n: number) => boolean): number {
  const v = at.value;
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n) || !ok(n)) fail(source, at, expected);
  return n;
}

function toBool(source: string, at: Located): boolean {
  const v = at.value;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|yes|on|1)$/i.test(v.trim())) return true;
  if (typeof v === 'string' && /^(false|no|off|0)$/i.test(v.trim())) return false;
  return fail(source, at, 'true or false');
}

function toStr(source: string, at: Located): string {
  const v = at.value;
  if (typeof v === 'string' && v.trim() !== '') return v;
  if (typeof v === 'number') return String(v);
  return fail(source, at, 'a non-empty string');
}

function parseYaml(text: string, source: string): { doc: Document.Parsed; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    version: '1.1',
    prettyErrors: false,
    uniqueKeys: true,
  });
  const error = doc.errors[0];
  if (error) {
    const pos = lines.linePos(error.pos[0]);
    const first = error.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? error.message;
    throw new ServingConfigError(
      `${source}:${pos.line}:${pos.col}: not valid YAML: ${first}`,
      null,
      pos.line,
    );
  }
  return { doc, lines };
}

/** The top-level pairs, keyed by their dashed spelling; duplicates across spellings are an error. */
interface TopLevelPair extends Located {
  node: ParsedNode | null;
  /** Offset just after the key's text. */
  keyEnd: number;
}

function topLevel(doc: Document.Parsed, lines: LineCounter, source: string): Map<string, TopLevelPair> {
  const out = new Map<string, TopLevelPair>();
  const contents = doc.contents;
  if (contents === null) return out;
  if (!isMap(contents)) {
    const line = contents.range ? lines.linePos(contents.range[0]).line : 1;
    throw new ServingConfigError(
      `${source}:${line}: expected a mapping of vLLM options (key: value), got ${isScalar(contents) ? 'a single value' : 'a list'}`,
      null,
      line,
    );
  }
  // Values as PyYAML would give them (aliases resolved).
  const js = doc.toJS() as Record<string, unknown> | null;
  for (const pair of contents.items) {
    const keyNode = pair.key as ParsedNode | null;
    const line = keyNode?.range ? lines.linePos(keyNode.range[0]).line : 1;
    if (!isScalar(keyNode) || typeof keyNode.value !== 'string') {
      throw new ServingConfigError(
        `${source}:${line}: expected option names as keys, got ${show(keyNode?.toJSON())}`,
        null,
        line,
      );
    }
    const spelling = keyNode.value;
    const key = dashed(spelling);
    const before = out.get(key);
    if (before) {
      throw new ServingConfigError(
        `${source}:${line}: ${spelling}: the option is set twice (line ${before.line} as ${before.spelling}); keep one`,
        key,
        line,
      );
    }
    const node = pair.value ?? null;
    const value: unknown = js?.[spelling] ?? null;
    out.set(key, { key, spelling, value, line, node, keyEnd: keyNode.range?.[1] ?? 0 });
  }
  return out;
}

/** Parse a config file's text (pure). Missing keys take vLLM's defaults, see {@link batchDefaults}. */
export function parseServingConfig(
  text: string,
  source: string,
  opts: ServingConfigOptions = {},
): ServingConfigFile {
  const { doc, lines } = parseYaml(text, source);
  const pairs = topLevel(doc, lines, source);
  const get = (key: string) => pairs.get(key) ?? null;
  const values: Record<string, unknown> = {};
  const spelling: Record<string, string> = {};
  let underscores = 0;
  let dashes = 0;
  for (const [key, p] of pairs) {
    values[key] = p.value;
    spelling[key] = p.spelling;
    if (p.spelling.includes('_')) underscores++;
    else if (p.spelling.includes('-')) dashes++;
  }

  const num = <T>(key: string, conv: (at: Located) => T): T | undefined => {
    const at = get(key);
    return at === null ? undefined : conv(at);
  };

  const util = num(SERVING_KEYS.gpuMemoryUtilization, (at) =>
    toFloat(source, at, 'a fraction of GPU memory in (0, 1], e.g. 0.9', (n) => n > 0 && n <= 1),
  );
  const maxModelLenAt = get(SERVING_KEYS.maxModelLen);
  if (
    maxModelLenAt &&
    (maxModelLenAt.value === -1 || maxModelLenAt.value === '-1' || maxModelLenAt.value === 'auto')
  ) {
    fail(source, maxModelLenAt, 'a number of tokens (the predictor cannot model "fit to memory", -1/auto)');
  }
  const maxModelLen =
    num(SERVING_KEYS.maxModelLen, (at) => toInt(source, at, 1, true)) ??
    (opts.maxPositionEmbeddings && opts.maxPositionEmbeddings > 0
      ? opts.maxPositionEmbeddings
      : VLLM_DEFAULTS.maxModelLen);
  const chunked = num('enable-chunked-prefill', (at) => toBool(source, at));
  const defaults = batchDefaults(opts, maxModelLen, chunked);
  const maxNumBatchedTokens =
    num(SERVING_KEYS.maxNumBatchedTokens, (at) => toInt(source, at, 1, true)) ?? defaults.maxNumBatchedTokens;
  const maxNumSeqs =
    num(SERVING_KEYS.maxNumSeqs, (at) => toInt(source, at, 1, false)) ??
    Math.min(defaults.maxNumSeqs, maxNumBatchedTokens);
  const kvCacheDtype =
    num(SERVING_KEYS.kvCacheDtype, (at) => {
      const s = toStr(source, at);
      if (!(KV_CACHE_DTYPES as readonly string[]).includes(s))
        fail(source, at, `one of ${KV_CACHE_DTYPES.join(', ')}`);
      return s as ServingConfig['kvCacheDtype'];
    }) ?? VLLM_DEFAULTS.kvCacheDtype;
  const enforceEager =
    num(SERVING_KEYS.enforceEager, (at) => toBool(source, at)) ?? VLLM_DEFAULTS.enforceEager;
  const tensorParallelSize =
    num(SERVING_KEYS.tensorParallelSize, (at) => toInt(source, at, 1, false)) ??
    VLLM_DEFAULTS.tensorParallelSize;

  const model = num('model', (at) => toStr(source, at)) ?? null;
  const servedModelName =
    num('served-model-name', (at) => {
      if (Array.isArray(at.value)) {
        const first: unknown = at.value[0];
        if (typeof first !== 'string' || first === '') fail(source, at, 'a name or a list of names');
        return first;
      }
      return toStr(source, at);
    }) ?? null;
  const port = num('port', (at) => {
    const n = toInt(source, at, 0, false);
    if (n > 65535) fail(source, at, 'a TCP port (0–65535)');
    return n;
  });
  const dtype = num('dtype', (at) => toStr(source, at)) ?? null;

  const explicit = Object.values(SERVING_KEYS).filter((k) => pairs.has(k));
  return {
    source,
    text,
    raw: doc,
    values,
    spelling,
    keyStyle: underscores > dashes ? 'underscore' : 'dash',
    serving: {
      gpuMemoryUtilization:
        util ??
        (opts.release ? releaseRules(opts.release).defaultUtilization : VLLM_DEFAULTS.gpuMemoryUtilization),
      maxModelLen,
      maxNumBatchedTokens,
      maxNumSeqs,
      kvCacheDtype,
      enforceEager,
      tensorParallelSize,
    },
    explicit,
    model,
    servedModelName,
    port: port ?? null,
    dtype,
  };
}

/** Read the service's config file as `vllm serve --config FILE` would. */
export function readServingConfig(path: string, opts: ServingConfigOptions = {}): ServingConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT' ? 'does not exist' : err.code === 'EACCES' ? 'is not readable' : err.message;
    throw new ServingConfigError(`vLLM config ${path} ${why}`);
  }
  return parseServingConfig(text, path, opts);
}

type ChangeValue = string | number | boolean;

/** Check a value for a key vLLM knows, as parseServingConfig would read it back. */
function validateChange(key: string, value: ChangeValue): void {
  const msg = (expected: string): never => {
    throw new ServingConfigError(`change: ${key}: expected ${expected}, got ${show(value)}`, key);
  };
  if (typeof value === 'number' && !Number.isFinite(value)) msg('a finite number');
  switch (key) {
    case SERVING_KEYS.gpuMemoryUtilization:
      if (typeof value !== 'number' || !(value > 0 && value <= 1)) msg('a fraction of GPU memory in (0, 1]');
      return;
    case SERVING_KEYS.maxModelLen:
    case SERVING_KEYS.maxNumBatchedTokens:
    case SERVING_KEYS.maxNumSeqs:
    case SERVING_KEYS.tensorParallelSize:
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) msg('a whole number ≥ 1');
      return;
    case SERVING_KEYS.kvCacheDtype:
      if (typeof value !== 'string' || !(KV_CACHE_DTYPES as readonly string[]).includes(value)) {
        msg(`one of ${KV_CACHE_DTYPES.join(', ')}`);
      }
      return;
    case SERVING_KEYS.enforceEager:
      if (typeof value !== 'boolean') msg('true or false');
      return;
    default:
  }
}

const PLAIN_SAFE = /^[A-Za-z_/][A-Za-z0-9_./:@+-]*$/;
const YAML11_WORDS =
  /^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~)$/;

/** YAML source text for a value; `quote` keeps a quoted scalar quoted the way it was. */
function scalarSource(value: ChangeValue, quote: 'QUOTE_DOUBLE' | 'QUOTE_SINGLE' | null): string {
  const text = typeof value === 'string' ? value : String(value);
  if (quote === 'QUOTE_SINGLE') return `'${text.replace(/'/g, "''")}'`;
  if (quote === 'QUOTE_DOUBLE') return JSON.stringify(text);
  if (typeof value !== 'string') return text;
  return PLAIN_SAFE.test(value) && !YAML11_WORDS.test(value) ? value : JSON.stringify(value);
}

/**
 * Set `changes` (keys in either spelling) in a vLLM config file's text and return the new text. Only the
 * value text of those keys changes; a key the file lacks is appended at the end in the file's own spelling.
 * Keys vLLM's memory knobs use are checked (a utilization of 1.5 is refused here, not at restart).
 */
export function applyChanges(
  yamlText: string,
  changes: Record<string, ChangeValue>,
  source = 'vLLM config',
): string {
  const { doc, lines } = parseYaml(yamlText, source);
  const pairs = topLevel(doc, lines, source);
  const underscores = [...pairs.values()].filter((p) => p.spelling.includes('_')).length;
  const dashes = [...pairs.values()].filter(
    (p) => !p.spelling.includes('_') && p.spelling.includes('-'),
  ).length;
  const style = underscores > dashes ? 'underscore' : 'dash';
  const isFlowRoot = isMap(doc.contents) && doc.contents.flow === true;

  const edits: { start: number; end: number; text: string }[] = [];
  const appended: string[] = [];
  const seen = new Set<string>();
  for (const [rawKey, value] of Object.entries(changes)) {
    const key = dashed(rawKey);
    if (seen.has(key))
      throw new ServingConfigError(`${source}: ${rawKey}: the change names this option twice`, key);
    seen.add(key);
    validateChange(key, value);
    const existing = pairs.get(key);
    if (isFlowRoot) continue; // handled below through the Document API
    if (existing) {
      const node = existing.node;
      if (node === null || !isScalar(node) || !node.range) {
        // `key:` with no value: write the value right after the colon.
        if (node === null) {
          const colon = yamlText.indexOf(':', existing.keyEnd);
          edits.push({ start: colon + 1, end: colon + 1, text: ` ${scalarSource(value, null)}` });
          continue;
        }
        throw new ServingConfigError(
          `${source}:${existing.line}: ${existing.spelling}: expected a single value to replace, found ${isMap(node) ? 'a mapping' : isSeq(node) ? 'a list' : 'an alias'}`,
          key,
          existing.line,
        );
      }
      const quote = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE' ? node.type : null;
      if (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED') {
        throw new ServingConfigError(
          `${source}:${existing.line}: ${existing.spelling}: a block scalar (| or >) cannot be rewritten in place`,
          key,
          existing.line,
        );
      }
      // `key:` with nothing after it: an empty scalar right after the colon, which needs a space first.
      const empty = node.range[0] === node.range[1];
      edits.push({
        start: node.range[0],
        end: node.range[1],
        text: `${empty ? ' ' : ''}${scalarSource(value, quote)}`,
      });
    } else {
      const spelled = style === 'underscore' ? key.replace(/-/g, '_') : key;
      appended.push(`${spelled}: ${scalarSource(value, null)}`);
    }
  }

  let out: string;
  if (isFlowRoot) {
    for (const [rawKey, value] of Object.entries(changes)) {
      const key = dashed(rawKey);
      const existing = pairs.get(key);
      const spelled = existing?.spelling ?? (style === 'underscore' ? key.replace(/-/g, '_') : key);
      doc.set(spelled, value);
    }
    out = doc.toString({ lineWidth: 0 });
  } else {
    out = yamlText;
    for (const e of edits.sort((a, b) => b.start - a.start))
      out = out.slice(0, e.start) + e.text + out.slice(e.end);
    if (appended.length > 0) {
      // An empty document or one holding only `---`/comments: the keys become its mapping.
      const docEnd = /(?:^|\n)(\.\.\.\s*)$/.exec(out);
      const head = docEnd?.[1] !== undefined ? out.slice(0, out.length - docEnd[1].length) : out;
      const tail = out.slice(head.length);
      const eol = out.includes('\r\n') ? '\r\n' : '\n';
      const sep = head === '' || head.endsWith('\n') ? '' : eol;
      out = head + sep + appended.join(eol) + eol + tail;
    }
  }

  // Read it back: the edit must say exactly what was asked, and nothing else may have moved.
  const reread = parseYaml(out, source);
  const after = topLevel(reread.doc, reread.lines, source);
  for (const [rawKey, value] of Object.entries(changes)) {
    const got = after.get(dashed(rawKey))?.value;
    const same = got === value || (typeof got === 'string' && got === String(value));
    if (!same) {
      throw new ServingConfigError(
        `${source}: ${rawKey}: the edited file reads back ${show(got)}, not ${show(value)}; file left unchanged`,
        dashed(rawKey),
      );
    }
  }
  for (const [key, before] of pairs) {
    if (seen.has(key)) continue;
    if (JSON.stringify(after.get(key)?.value) !== JSON.stringify(before.value)) {
      throw new ServingConfigError(
        `${source}: ${before.spelling}: the edit would change this option too; file left unchanged`,
        key,
      );
    }
  }
  return out;
}
