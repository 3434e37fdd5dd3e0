// The service's vLLM config (read as `vllm serve --config` reads it, edited in place) and the model profile
// (from a profile file, a model directory or the Hugging Face cache).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ServingConfigError,
  applyChanges,
  batchDefaults,
  parseServingConfig,
  readServingConfig,
} from '../../src/service/vllm-config.js';
import { ModelProfileError, loadModelProfile, profileFromHfConfig } from '../../src/service/model-profile.js';

const MODELS = fileURLToPath(new URL('../fixtures/models/', import.meta.url));
const H100 = { gpuTotalMb: 81559, gpuName: 'NVIDIA H100 80GB HBM3' };

const CONFIG = `# vLLM service config for the chat model
model: meta-llama/Meta-Llama-3-8B-Instruct   # pinned in the model cache
served_model_name: [llama3, chat]

# memory
gpu_memory_utilization: 0.90  # tuned by hand, see ticket 42
max_model_len: "8192"
enforce_eager: no
kv_cache_dtype: auto

port: 8000
tensor-parallel-size: 1
`;

describe('reading the vLLM config', () => {
  test('reads keys in either spelling, quoted numbers and YAML 1.1 booleans as vLLM does', () => {
    const f = parseServingConfig(CONFIG, 'svc.yaml', H100);
    assert.deepEqual(f.serving, {
      gpuMemoryUtilization: 0.9,
      maxModelLen: 8192,
      maxNumBatchedTokens: 8192, // not set: vLLM's default on a ≥ 70 GiB GPU that is not an A100
      maxNumSeqs: 1024,
      kvCacheDtype: 'auto',
      enforceEager: false,
      tensorParallelSize: 1,
    });
    assert.equal(f.model, 'meta-llama/Meta-Llama-3-8B-Instruct');
    assert.equal(f.servedModelName, 'llama3');
    assert.equal(f.port, 8000);
    assert.equal(f.keyStyle, 'underscore');
    assert.equal(f.spelling['gpu-memory-utilization'], 'gpu_memory_utilization');
    assert.deepEqual(f.explicit, [
      'gpu-memory-utilization',
      'max-model-len',
      'kv-cache-dtype',
      'enforce-eager',
      'tensor-parallel-size',
    ]);
  });

  test("missing keys take vLLM's defaults: 0.9, max_position_embeddings, 2048 tokens / 256 sequences on small GPUs", () => {
    const f = parseServingConfig('model: m\n', 'svc.yaml', { maxPositionEmbeddings: 131072 });
    assert.deepEqual(f.serving, {
      gpuMemoryUtilization: 0.9,
      maxModelLen: 131072,
      maxNumBatchedTokens: 2048,
      maxNumSeqs: 256,
      kvCacheDtype: 'auto',
      enforceEager: false,
      tensorParallelSize: 1,
    });
    assert.equal(f.servedModelName, null);
    assert.equal(f.port, null);
    // no length in config.json either: vLLM's fallback 2048
    assert.equal(parseServingConfig('{}', 's', {}).serving.maxModelLen, 2048);
  });

  test('batch defaults by GPU: H100 8192/1024, A100 80 GB and 24 GB GPUs 2048/256, no chunked prefill ≥ max-model-len', () => {
    assert.deepEqual(batchDefaults(H100, 8192, true), { maxNumBatchedTokens: 8192, maxNumSeqs: 1024 });
    assert.deepEqual(batchDefaults({ gpuTotalMb: 81920, gpuName: 'NVIDIA A100-SXM4-80GB' }, 8192, true), {
      maxNumBatchedTokens: 2048,
      maxNumSeqs: 256,
    });
    assert.deepEqual(batchDefaults({ gpuTotalMb: 24576, gpuName: 'NVIDIA L4' }, 8192, true), {
      maxNumBatchedTokens: 2048,
      maxNumSeqs: 256,
    });
    assert.deepEqual(batchDefaults({}, 32768, false), { maxNumBatchedTokens: 32768, maxNumSeqs: 256 });
    const f = parseServingConfig('enable-chunked-prefill: false\nmax-model-len: 16384\n', 's', {});
    assert.equal(f.serving.maxNumBatchedTokens, 16384);
  });

  test("vLLM's human-readable lengths: 32k = 32 000, 4K = 4096", () => {
    const f = parseServingConfig(
      'max-model-len: 32k\nmax-num-batched-tokens: 4K\nmax-num-seqs: 64\n',
      's',
      {},
    );
    assert.equal(f.serving.maxModelLen, 32000);
    assert.equal(f.serving.maxNumBatchedTokens, 4096);
  });

  const bad: [string, string, RegExp][] = [
    [
      'broken YAML',
      'model: m\ngpu-memory-utilization: [0.9\nport: 1\n',
      /^svc\.yaml:\d+:\d+: not valid YAML: /,
    ],
    [
      'a word for a number',
      'model: m\ngpu-memory-utilization: high\n',
      /^svc\.yaml:2: gpu-memory-utilization: expected a fraction of GPU memory in \(0, 1\].*got "high"$/,
    ],
    [
      'utilization above 1',
      'gpu_memory_utilization: 1.5\n',
      /^svc\.yaml:1: gpu_memory_utilization: expected a fraction .* got 1\.5$/,
    ],
    [
      'fractional length',
      'x: 1\n\nmax-model-len: 8192.5\n',
      /^svc\.yaml:3: max-model-len: expected a whole number ≥ 1/,
    ],
    [
      'unknown KV dtype',
      'kv-cache-dtype: int4\n',
      /^svc\.yaml:1: kv-cache-dtype: expected one of auto, fp8, fp8_e4m3, fp8_e5m2, got "int4"$/,
    ],
    [
      'not a boolean',
      'enforce-eager: maybe\n',
      /^svc\.yaml:1: enforce-eager: expected true or false, got "maybe"$/,
    ],
    [
      'the same option twice',
      'max_model_len: 1024\nmax-model-len: 2048\n',
      /^svc\.yaml:2: max-model-len: the option is set twice \(line 1 as max_model_len\)/,
    ],
    ['a list, not a mapping', '- model\n- m\n', /^svc\.yaml:1: expected a mapping of vLLM options/],
    [
      'fit-to-memory length',
      'max-model-len: -1\n',
      /^svc\.yaml:1: max-model-len: expected a number of tokens/,
    ],
    ['port out of range', 'port: 70000\n', /^svc\.yaml:1: port: expected a TCP port/],
  ];
  for (const [name, text, message] of bad) {
    test(`refused: ${name}`, () => {
      assert.throws(
        () => parseServingConfig(text, 'svc.yaml', {}),
        (e: unknown) => e instanceof ServingConfigError && message.test(e.message),
      );
    });
  }

  test('the error carries the key and line', () => {
    try {
      parseServingConfig('a: 1\nmax_num_seqs: lots\n', 'svc.yaml', {});
      assert.fail('expected an error');
    } catch (e) {
      assert.ok(e instanceof ServingConfigError);
      assert.equal(e.key, 'max-num-seqs');
      assert.equal(e.line, 2);
    }
  });

  test('readServingConfig reads a file, and names a missing one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'klr-cfg-'));
    try {
      const path = join(dir, 'vllm.yaml');
      writeFileSync(path, CONFIG);
      assert.equal(readServingConfig(path).serving.maxModelLen, 8192);
      assert.throws(
        () => readServingConfig(join(dir, 'nope.yaml')),
        /vLLM config .*nope\.yaml does not exist/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('editing the vLLM config', () => {
  test('changes only the values asked for; comments, blank lines, order and other keys stay byte for byte', () => {
    const out = applyChanges(CONFIG, { 'gpu-memory-utilization': 0.85, 'max-model-len': 4096 });
    const expected = CONFIG.replace(
      'gpu_memory_utilization: 0.90  #',
      'gpu_memory_utilization: 0.85  #',
    ).replace(
      'max_model_len: "8192"',
      'max_model_len: "4096"', // quoted before, quoted after
    );
    assert.equal(out, expected);
    assert.equal(parseServingConfig(out, 's', {}).serving.gpuMemoryUtilization, 0.85);
  });

  test("writes back in the file's spelling and appends new keys in it", () => {
    const out = applyChanges(CONFIG, { enforce_eager: true, 'max-num-seqs': 128 });
    assert.match(out, /\nenforce_eager: true\n/);
    assert.ok(out.endsWith('tensor-parallel-size: 1\nmax_num_seqs: 128\n'), out);
    assert.ok(!out.includes('max-num-seqs'));
    const dashedFile = 'model: m\ngpu-memory-utilization: 0.9\n';
    assert.equal(
      applyChanges(dashedFile, { max_num_batched_tokens: 4096 }),
      `${dashedFile}max-num-batched-tokens: 4096\n`,
    );
  });

  test('no changes: the text is returned unchanged', () => {
    assert.equal(applyChanges(CONFIG, {}), CONFIG);
  });

  test('edge cases: empty file, comment-only file, key without a value, file without a final newline', () => {
    assert.equal(applyChanges('', { 'gpu-memory-utilization': 0.8 }), 'gpu-memory-utilization: 0.8\n');
    assert.equal(
      applyChanges('# nothing yet\n', { 'kv-cache-dtype': 'fp8' }),
      '# nothing yet\nkv-cache-dtype: fp8\n',
    );
    assert.equal(
      applyChanges('a: 1\nmax-model-len:\nb: 2\n', { 'max-model-len': 1024 }),
      'a: 1\nmax-model-len: 1024\nb: 2\n',
    );
    assert.equal(applyChanges('model: m', { port: 9000 }), 'model: m\nport: 9000\n');
    assert.equal(
      applyChanges('model: m\r\nport: 1\r\n', { port: 2, 'max-num-seqs': 8 }),
      'model: m\r\nport: 2\r\nmax-num-seqs: 8\r\n',
    );
  });

  test('a value vLLM would reject is refused before it is written', () => {
    assert.throws(
      () => applyChanges(CONFIG, { 'gpu-memory-utilization': 1.2 }),
      /gpu-memory-utilization: expected a fraction/,
    );
    assert.throws(
      () => applyChanges(CONFIG, { 'max-model-len': 100.5 }),
      /max-model-len: expected a whole number/,
    );
    assert.throws(
      () => applyChanges(CONFIG, { 'kv-cache-dtype': 'int4' }),
      /kv-cache-dtype: expected one of/,
    );
    assert.throws(
      () => applyChanges(CONFIG, { max_model_len: 1, 'max-model-len': 2 }),
      /names this option twice/,
    );
  });

  test('broken YAML is refused with its line', () => {
    assert.throws(
      () => applyChanges('model: m\nport: [8000\n', { port: 1 }),
      /^ServingConfigError: vLLM config:\d+:\d+: not valid YAML/,
    );
  });
});

describe('model profile', () => {
  test('from a profile file (KLR_MODEL_PROFILE), which wins over config.json', () => {
    const p = loadModelProfile({
      servingConfigModel: join(MODELS, 'vlm-text-config'), // would give a 40-layer model
      profilePath: join(MODELS, 'llama-3-8b.profile.yaml'),
    });
    assert.deepEqual(p, {
      name: 'acme/llama-3-8b-like',
      layers: 32,
      attentionHeads: 32,
      kvHeads: 8,
      headDim: 128,
      hiddenSize: 4096,
      intermediateSize: 14336,
      vocabSize: 128256,
      dtypeBytes: 2,
      weightsMb: 15317,
      maxPositionEmbeddings: 8192,
      source: join(MODELS, 'llama-3-8b.profile.yaml'),
    });
  });

  test('a profile file with a field missing names the file and the field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'klr-prof-'));
    try {
      const path = join(dir, 'p.json');
      writeFileSync(
        path,
        JSON.stringify({ name: 'x', layers: 2, attentionHeads: 2, kvHeads: 2, headDim: 64 }),
      );
      assert.throws(
        () => loadModelProfile({ servingConfigModel: 'x', profilePath: path }),
        (e: unknown) =>
          e instanceof ModelProfileError &&
          e.message === `model profile ${path}: hiddenSize: expected a positive number, got nothing`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('from a local model directory: Llama config.json, head_dim = hidden / heads, weights from the index', () => {
    const dir = join(MODELS, 'llama-3-8b-like');
    const p = loadModelProfile({ servingConfigModel: dir, servedModelName: 'llama3' });
    assert.deepEqual(p, {
      name: 'llama3',
      layers: 32,
      attentionHeads: 32,
      kvHeads: 8,
      headDim: 128, // 4096 / 32
      hiddenSize: 4096,
      intermediateSize: 14336,
      vocabSize: 128256,
      dtypeBytes: 2,
      weightsMb: 16060522496 / 1048576, // 15 316.5 MiB
      maxPositionEmbeddings: 8192,
      source: join(dir, 'config.json'),
    });
  });

  test('GPT-2 style: MHA (no KV-head count), n_inner null → 4 × hidden, float32 served in 16 bits, weights summed', () => {
    const p = loadModelProfile({ servingConfigModel: 'gpt2-like-mha', searchDirs: [MODELS] });
    assert.equal(p.layers, 12);
    assert.equal(p.attentionHeads, 12);
    assert.equal(p.kvHeads, 12);
    assert.equal(p.headDim, 64);
    assert.equal(p.intermediateSize, 3072);
    assert.equal(p.vocabSize, 50257);
    assert.equal(p.maxPositionEmbeddings, 1024);
    assert.equal(p.dtypeBytes, 2);
    // 1536 + 2560 bytes of float32 checkpoint, loaded as 16-bit: 2048 bytes
    assert.equal(p.weightsMb, 2048 / 1048576);
    const fp32 = loadModelProfile({
      servingConfigModel: 'gpt2-like-mha',
      searchDirs: [MODELS],
      servingDtype: 'float32',
    });
    assert.equal(fp32.dtypeBytes, 4);
    assert.equal(fp32.weightsMb, 4096 / 1048576);
  });

  test('multimodal config.json: the language model figures come from text_config', () => {
    const p = loadModelProfile({ servingConfigModel: join(MODELS, 'vlm-text-config') });
    assert.equal(p.layers, 40);
    assert.equal(p.kvHeads, 8);
    assert.equal(p.headDim, 128); // given, not 5120 / 32 = 160
    assert.equal(p.maxPositionEmbeddings, 131072);
    assert.equal(p.kind, 'multimodal', 'its vision encoder is profiled too: the KV cache must be measured');
  });

  test('model kinds: a decoder, a pooling model (no LM head), a multimodal one', () => {
    const kindOf = (cfg: Record<string, unknown>) =>
      profileFromHfConfig(
        { num_hidden_layers: 2, num_attention_heads: 4, hidden_size: 64, vocab_size: 100, ...cfg },
        { file: 'config.json', name: 'm', checkpointBytes: 0 },
      ).kind;
    assert.equal(kindOf({ architectures: ['LlamaForCausalLM'] }), undefined);
    assert.equal(kindOf({ architectures: ['Qwen3ForCausalLM'] }), undefined);
    assert.equal(kindOf({ architectures: ['BertModel'] }), 'pooling');
    assert.equal(kindOf({ architectures: ['Qwen2ForSequenceClassification'] }), 'pooling');
    assert.equal(kindOf({ architectures: ['MistralModel'] }), 'pooling', 'e5-mistral');
    assert.equal(
      kindOf({ architectures: ['Qwen2VLForConditionalGeneration'], vision_config: {} }),
      'multimodal',
    );
    assert.equal(kindOf({}), undefined);
  });

  test('a config.json without the layer count names the file and the field', () => {
    const dir = join(MODELS, 'missing-layers');
    assert.throws(
      () => loadModelProfile({ servingConfigModel: dir }),
      (e: unknown) =>
        e instanceof ModelProfileError &&
        e.message.startsWith(
          `model config ${join(dir, 'config.json')}: num_hidden_layers: expected the number of layers`,
        ),
    );
  });

  test('rope scaling stretches the derived length as vLLM does (yarn: original × factor; llama3: as stated)', () => {
    const cfg = {
      num_hidden_layers: 1,
      num_attention_heads: 1,
      hidden_size: 64,
      vocab_size: 10,
      max_position_embeddings: 32768,
    };
    const yarn = {
      ...cfg,
      rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 },
    };
    const llama3 = {
      ...cfg,
      max_position_embeddings: 131072,
      rope_scaling: { rope_type: 'llama3', factor: 8 },
    };
    const opts = { file: 'config.json', name: 'm', checkpointBytes: 1 };
    assert.equal(profileFromHfConfig(yarn, opts).maxPositionEmbeddings, 131072);
    assert.equal(profileFromHfConfig(llama3, opts).maxPositionEmbeddings, 131072);
  });

  describe('from the Hugging Face cache', () => {
    let home: string;
    before(() => {
      home = mkdtempSync(join(tmpdir(), 'klr-hf-'));
      const repo = join(home, 'hub', 'models--acme--llama-like');
      for (const rev of ['1111111111', '2222222222']) {
        mkdirSync(join(repo, 'snapshots', rev), { recursive: true });
        cpSync(join(MODELS, 'llama-3-8b-like'), join(repo, 'snapshots', rev), { recursive: true });
      }
      // the older snapshot is the newest on disk: refs/main must win over modification time
      utimesSync(join(repo, 'snapshots', '1111111111'), new Date(), new Date(Date.now() + 60_000));
      mkdirSync(join(repo, 'refs'));
      writeFileSync(join(repo, 'refs', 'main'), '2222222222');
    });
    after(() => rmSync(home, { recursive: true, force: true }));

    test('$HF_HOME/hub/models--org--name/snapshots/<refs/main>/', () => {
      const p = loadModelProfile({
        servingConfigModel: 'acme/llama-like',
        env: { HF_HOME: home, HOME: home },
      });
      assert.equal(p.layers, 32);
      assert.equal(p.name, 'acme/llama-like');
      assert.equal(
        p.source,
        join(home, 'hub', 'models--acme--llama-like', 'snapshots', '2222222222', 'config.json'),
      );
    });

    test('a model that is nowhere: the error lists where it looked', () => {
      assert.throws(
        () => loadModelProfile({ servingConfigModel: 'acme/absent', env: { HF_HOME: home, HOME: home } }),
        (e: unknown) =>
          e instanceof ModelProfileError &&
          e.message.includes('model acme/absent: no local copy found') &&
          e.message.includes(join(home, 'hub', 'models--acme--absent', 'snapshots', '*')) &&
          e.message.includes('KLR_MODEL_PROFILE'),
      );
    });
  });

  test('no model in the config and no profile: says what to set', () => {
    assert.throws(() => loadModelProfile({ servingConfigModel: null }), /no `model:` key.*KLR_MODEL_PROFILE/);
  });
});
