// What the served model is, for the memory model: from a profile file (KLR_MODEL_PROFILE, wins), or from the
// model's own config.json and weight files, found where vLLM would find them: `model:` as a local directory,
// or a Hugging Face id in the hub cache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub:
// models--org--name/snapshots/<revision>/). No model is hard-coded; a missing field is an error that names
// the file and the field.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { MODEL_SHAPE_FIELDS, type ModelProfile } from '../domain/vllm-memory-model.js';

export class ModelProfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelProfileError';
  }
}

export interface LoadedModelProfile extends ModelProfile {
  /** The model's own length limit (config.json max_position_embeddings, rope scaling applied): vLLM's default max-model-len. */
  maxPositionEmbeddings: number | null;
  /** Where the figures came from: the profile file, or the model directory. */
  source: string;
}

export interface LoadModelProfileOptions {
  /** `model:` of the serving config: a local directory or a Hugging Face id (org/name). */
  servingConfigModel: string | null;
  /** KLR_MODEL_PROFILE: a YAML/JSON file with ModelProfile fields; wins over everything else. */
  profilePath?: string;
  /** More places to look: model directories (DIR/org/name), Hugging Face homes (DIR/hub) or hub caches. */
  searchDirs?: string[];
  /** Name the model is served under (served-model-name); defaults to the profile's name or `model:`. */
  servedModelName?: string | null;
  /** `dtype:` of the serving config (auto, bfloat16, float16, float32, ...). */
  servingDtype?: string | null;
  /** Environment for HF_HOME / HF_HUB_CACHE / HOME (defaults to the process's). */
  env?: Record<string, string | undefined>;
  /** Directory a relative `model:` path is resolved against (vLLM's working directory; default: ours). */
  baseDir?: string;
}

const PROFILE_NUMBERS = [...MODEL_SHAPE_FIELDS, 'weightsMb'] as const;

const show = (v: unknown): string => (v === undefined ? 'nothing' : JSON.stringify(v));

function readStructured(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ModelProfileError(
      `${what} ${path} ${err.code === 'ENOENT' ? 'does not exist' : `cannot be read: ${err.message}`}`,
    );
  }
  try {
    return parseYaml(text) as unknown; // YAML is a superset of JSON
  } catch (e) {
    throw new ModelProfileError(
      `${what} ${path} is not valid JSON/YAML: ${(e as Error).message.split('\n')[0]}`,
    );
  }
}

function asRecord(value: unknown, path: string, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ModelProfileError(
      `${what} ${path}: expected an object of fields, got ${Array.isArray(value) ? 'a list' : show(value)}`,
    );
  }
  return value as Record<string, unknown>;
}

/** A profile file: the ModelProfile fields (extra fields such as `architecture` are ignored). */
export function readProfileFile(path: string, fallbackName: string | null): LoadedModelProfile {
  const o = asRecord(readStructured(path, 'model profile'), path, 'model profile');
  const numbers = {} as Record<(typeof PROFILE_NUMBERS)[number], number>;
  for (const key of PROFILE_NUMBERS) {
    const v = o[key];
    const ok = typeof v === 'number' && Number.isFinite(v) && (key === 'weightsMb' ? v >= 0 : v > 0);
    if (!ok) {
      throw new ModelProfileError(
        `model profile ${path}: ${key}: expected a ${key === 'weightsMb' ? 'number ≥ 0' : 'positive number'}, got ${show(v)}`,
      );
    }
    numbers[key] = v;
  }
  const name = typeof o.name === 'string' && o.name !== '' ? o.name : fallbackName;
  if (name === null)
    throw new ModelProfileError(
      `model profile ${path}: name: expected the model's name, got ${show(o.name)}`,
    );
  const maxPos = o.maxPositionEmbeddings;
  if (
    maxPos !== undefined &&
    maxPos !== null &&
    !(typeof maxPos === 'number' && Number.isInteger(maxPos) && maxPos > 0)
  ) {
    throw new ModelProfileError(
      `model profile ${path}: maxPositionEmbeddings: expected a whole number > 0, got ${show(maxPos)}`,
    );
  }
  const kind = o.kind;
  if (kind !== undefined && kind !== 'decoder' && kind !== 'pooling' && kind !== 'multimodal') {
    throw new ModelProfileError(
      `model profile ${path}: kind: expected decoder, pooling or multimodal, got ${show(kind)}`,
    );
  }
  return {
    name,
    ...numbers,
    maxPositionEmbeddings: typeof maxPos === 'number' ? maxPos : null,
    source: path,
    ...(kind === 'pooling' || kind === 'multimodal' ? { kind } : {}),
  };
}

/** Bytes per element of a dtype name as config.json / vLLM write it; null when unknown. */
export function dtypeBytesOf(dtype: string): number | null {
  const d = dtype.toLowerCase().replace(/^torch\./, '');
  if (['bfloat16', 'bf16', 'float16', 'fp16', 'half'].includes(d)) return 2;
  if (['float32', 'fp32', 'float'].includes(d)) return 4;
  return null;
}

/** Sub-configs that hold the language model's figures in multimodal config.json files. */
const TEXT_CONFIG_KEYS = ['text_config', 'llm_config', 'language_config'] as const;

/**
 * A ModelProfile from a Hugging Face config.json (already parsed) and the checkpoint's size. Handles the
 * common spellings: Llama/Mistral/Qwen (num_key_value_heads, head_dim), GPT-2/GPT-J (n_layer, n_head,
 * n_embd, n_inner), Falcon (multi_query), ChatGLM (multi_query_group_num, kv_channels), OPT (ffn_dim),
 * multimodal models (text_config). Under vLLM's default dtype `auto` a float32 checkpoint is served in 16 bits.
 */
export function profileFromHfConfig(
  json: unknown,
  opts: { file: string; name: string; checkpointBytes: number; servingDtype?: string | null },
): LoadedModelProfile {
  const top = asRecord(json, opts.file, 'model config');
  let cfg: Record<string, unknown> = top;
  for (const key of TEXT_CONFIG_KEYS) {
    const sub = top[key];
    if (
      top.num_hidden_layers === undefined &&
      sub !== null &&
      typeof sub === 'object' &&
      !Array.isArray(sub)
    ) {
      cfg = { ...top, ...(sub as Record<string, unknown>) };
      break;
    }
  }
  const field = (names: readonly string[]): { name: string; value: number } | null => {
    for (const name of names) {
      const v = cfg[name];
      if (typeof v === 'number' && Number.isFinite(v) && v > 0) return { name, value: v };
    }
    return null;
  };
  const need = (what: string, names: readonly string[]): number => {
    const f = field(names);
    if (f === null) {
      const found = names.map((n) => cfg[n]).find((v) => v !== undefined);
      throw new ModelProfileError(
        `model config ${opts.file}: ${names[0]}: expected ${what} (a positive number${names.length > 1 ? `; also looked for ${names.slice(1).join(', ')}` : ''}), got ${show(found)}`,
      );
    }
    return f.value;
  };

  const layers = need('the number of layers', ['num_hidden_layers', 'n_layer', 'num_layers', 'n_layers']);
  const heads = need('the number of attention heads', [
    'num_attention_heads',
    'n_head',
    'num_heads',
    'n_heads',
  ]);
  const hidden = need('the hidden size', ['hidden_size', 'n_embd', 'd_model', 'dim']);
  const vocab = need('the vocabulary size', ['vocab_size', 'padded_vocab_size', 'n_vocab']);
  let kvHeads = field(['num_key_value_heads', 'n_head_kv', 'num_kv_heads', 'n_kv_heads'])?.value ?? null;
  if (kvHeads === null && cfg.multi_query_attention === true)
    kvHeads = field(['multi_query_group_num'])?.value ?? null;
  if (kvHeads === null && cfg.multi_query === true && cfg.new_decoder_architecture !== true) kvHeads = 1;
  kvHeads ??= heads; // no KV-head count: multi-head attention
  const headDim = field(['head_dim', 'kv_channels'])?.value ?? hidden / heads;
  if (!Number.isInteger(headDim)) {
    throw new ModelProfileError(
      `model config ${opts.file}: head_dim: expected a whole number; hidden_size ${hidden} / num_attention_heads ${heads} is not one`,
    );
  }
  const intermediate =
    field(['intermediate_size', 'ffn_hidden_size', 'n_inner', 'ffn_dim'])?.value ?? 4 * hidden;

  const configDtype =
    [cfg.torch_dtype, cfg.dtype, top.torch_dtype].find((v): v is string => typeof v === 'string') ?? null;
  const checkpointElementBytes = configDtype === null ? null : dtypeBytesOf(configDtype);
  let dtypeBytes = 2; // vLLM `auto`: the config's 16-bit dtype, or float32 downcast to 16 bits
  const requested = opts.servingDtype?.trim();
  if (requested && requested.toLowerCase() !== 'auto') {
    const b = dtypeBytesOf(requested);
    if (b === null) {
      throw new ModelProfileError(
        `serving dtype ${show(requested)}: expected auto, bfloat16, float16 or float32`,
      );
    }
    dtypeBytes = b;
  }
  const quantized = top.quantization_config !== undefined || cfg.quantization_config !== undefined;
  // An unquantized checkpoint stored in another width is converted when loaded.
  const scale = !quantized && checkpointElementBytes !== null ? dtypeBytes / checkpointElementBytes : 1;

  let maxPos =
    field(['max_position_embeddings', 'n_positions', 'max_seq_len', 'seq_length', 'max_sequence_length'])
      ?.value ?? null;
  const rope = cfg.rope_scaling;
  if (maxPos !== null && rope !== null && typeof rope === 'object') {
    const r = rope as Record<string, unknown>;
    const type =
      typeof r.rope_type === 'string' ? r.rope_type : typeof r.type === 'string' ? r.type : 'default';
    const factor = typeof r.factor === 'number' ? r.factor : null;
    // As vLLM derives max_model_len: these rope types already state the full length.
    if (factor !== null && !['su', 'longrope', 'llama3', 'default', 'mrope'].includes(type)) {
      const base =
        type === 'yarn' && typeof r.original_max_position_embeddings === 'number'
          ? r.original_max_position_embeddings
          : maxPos;
      maxPos = Math.floor(base * factor);
    }
  }

  return {
    name: opts.name,
    layers,
    attentionHeads: heads,
    kvHeads,
    headDim,
    hiddenSize: hidden,
    intermediateSize: intermediate,
    vocabSize: vocab,
    dtypeBytes,
    weightsMb: (opts.checkpointBytes * scale) / (1024 * 1024),
    maxPositionEmbeddings: maxPos,
    source: opts.file,
    ...kindOf(top),
  };
}

/** Sub-configs of the encoders a multimodal model profiles beside its language model. */
const ENCODER_CONFIG_KEYS = ['vision_config', 'audio_config', 'visual', 'vision_tower_config'] as const;

/**
 * A multimodal model (an encoder config beside the language model's) or a pooling model (an architecture
 * that embeds or classifies, no language-model head), as vLLM tells them apart; else a text decoder.
 */
function kindOf(top: Record<string, unknown>): { kind?: 'pooling' | 'multimodal' } {
  if (ENCODER_CONFIG_KEYS.some((k) => top[k] !== undefined && top[k] !== null)) return { kind: 'multimodal' };
  const archs = Array.isArray(top.architectures)
    ? top.architectures.filter((a) => typeof a === 'string')
    : [];
  const pooling =
    /(ForSequenceClassification|ForTokenClassification|ForEmbedding|EmbeddingModel|RewardModel|^[A-Za-z0-9]+Model)$/;
  if (
    archs.length > 0 &&
    archs.every((a) => pooling.test(a) && !/ForCausalLM|ForConditionalGeneration/.test(a))
  )
    return { kind: 'pooling' };
  return {};
}

/** Checkpoint bytes: an index's metadata.total_size, else the sum of the weight files' sizes. */
export function checkpointBytes(dir: string): number {
  for (const index of ['model.safetensors.index.json', 'pytorch_model.bin.index.json']) {
    const path = join(dir, index);
    if (!existsSync(path)) continue;
    const o = asRecord(readStructured(path, 'weights index'), path, 'weights index');
    const meta = o.metadata as Record<string, unknown> | undefined;
    const total = meta?.total_size;
    const n = typeof total === 'string' && /^\d+$/.test(total) ? Number(total) : total;
    if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) {
      throw new ModelProfileError(
        `weights index ${path}: metadata.total_size: expected the checkpoint's size in bytes, got ${show(total)}`,
      );
    }
    return n;
  }
  const files = readdirSync(dir);
  for (const pattern of [/\.safetensors$/, /^pytorch_model.*\.bin$/]) {
    const matching = files.filter((f) => pattern.test(f)).sort();
    if (matching.length > 0) return matching.reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
  }
  throw new ModelProfileError(
    `model directory ${dir}: no weights found (looked for model.safetensors.index.json, *.safetensors, pytorch_model*.bin); set KLR_MODEL_PROFILE to a profile file instead`,
  );
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Hugging Face hub caches to search, most specific first. */
export function hubCacheDirs(
  searchDirs: readonly string[],
  env: Record<string, string | undefined>,
): string[] {
  const dirs: string[] = [];
  for (const d of searchDirs) dirs.push(d, join(d, 'hub'));
  if (env.HF_HUB_CACHE) dirs.push(env.HF_HUB_CACHE);
  if (env.HUGGINGFACE_HUB_CACHE) dirs.push(env.HUGGINGFACE_HUB_CACHE);
  if (env.HF_HOME) dirs.push(join(env.HF_HOME, 'hub'));
  const home = env.HOME ?? homedir();
  const xdg = env.XDG_CACHE_HOME ?? join(home, '.cache');
  dirs.push(join(xdg, 'huggingface', 'hub'));
  return [...new Set(dirs)];
}

/** The snapshot a hub cache entry serves: refs/main's revision, else the newest snapshot with a config.json. */
function pickSnapshot(repoDir: string): string | null {
  const snapshots = join(repoDir, 'snapshots');
  if (!isDir(snapshots)) return null;
  try {
    const main = readFileSync(join(repoDir, 'refs', 'main'), 'utf8').trim();
    if (main !== '' && existsSync(join(snapshots, main, 'config.json'))) return join(snapshots, main);
  } catch {
    // no refs/main: fall through
  }
  const candidates = readdirSync(snapshots)
    .map((name) => join(snapshots, name))
    .filter((dir) => existsSync(join(dir, 'config.json')))
    .map((dir) => ({ dir, mtime: statSync(dir).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime || (a.dir < b.dir ? -1 : 1));
  return candidates[0]?.dir ?? null;
}

/** Where the model's config.json lives, and every place looked at when it is not found. */
export function resolveModelDir(
  model: string,
  searchDirs: readonly string[],
  env: Record<string, string | undefined>,
  baseDir: string = process.cwd(),
): { dir: string | null; looked: string[] } {
  const looked: string[] = [];
  const home = env.HOME ?? homedir();
  const expanded = model.startsWith('~/') ? join(home, model.slice(2)) : model;
  const local = isAbsolute(expanded) ? expanded : resolve(baseDir, expanded);
  looked.push(local);
  if (isDir(local)) return { dir: local, looked };
  for (const d of searchDirs) {
    const inside = join(d, expanded);
    looked.push(inside);
    if (!isAbsolute(expanded) && isDir(inside)) return { dir: inside, looked };
  }
  if (!isAbsolute(expanded) && !expanded.startsWith('.')) {
    const entry = `models--${model.replace(/\//g, '--')}`;
    for (const hub of hubCacheDirs(searchDirs, env)) {
      const repo = join(hub, entry);
      looked.push(join(repo, 'snapshots', '*'));
      const snapshot = pickSnapshot(repo);
      if (snapshot !== null) return { dir: snapshot, looked };
    }
  }
  return { dir: null, looked };
}

/**
 * The served model's profile: the profile file when given, else from config.json + weights of the
 * model directory or Hugging Face cache snapshot that `model:` names.
 */
export function loadModelProfile(opts: LoadModelProfileOptions): LoadedModelProfile {
  const env = opts.env ?? process.env;
  const served = opts.servedModelName ?? null;
  if (opts.profilePath) {
    const p = readProfileFile(opts.profilePath, served ?? opts.servingConfigModel);
    return served ? { ...p, name: served } : p;
  }
  const model = opts.servingConfigModel;
  if (model === null || model.trim() === '') {
    throw new ModelProfileError(
      'the vLLM config names no model (no `model:` key) and no model profile is set: add `model:` or set KLR_MODEL_PROFILE',
    );
  }
  const { dir, looked } = resolveModelDir(model, opts.searchDirs ?? [], env, opts.baseDir);
  if (dir === null) {
    throw new ModelProfileError(
      `model ${model}: no local copy found (looked in ${looked.join(', ')}); download it, or set KLR_MODEL_PROFILE to a profile file`,
    );
  }
  const file = join(dir, 'config.json');
  const json = readStructured(file, 'model config');
  return profileFromHfConfig(json, {
    file,
    name: served ?? model,
    checkpointBytes: checkpointBytes(dir),
    servingDtype: opts.servingDtype ?? null,
  });
}
