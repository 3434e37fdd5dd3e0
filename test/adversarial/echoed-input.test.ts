// A caller of the inference service writes into its log: vLLM logs prompts, stop strings and outputs
// (--enable-log-requests, --enable-log-outputs, on by default before 0.10), SGLang with --log-requests.
// Every failure line of the real-log corpus, sent as a prompt, a stop string or a generated output, must
// raise no symptom; and a figure in a prompt must not change the start-up report calibration reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withoutEchoedInput } from '../../src/domain/echoed-input.js';
import { readStartupReport } from '../../src/domain/startup-report.js';
import { detectAll } from '../../src/observer/detector.js';
import { classifyLine } from '../../src/observer/patterns.js';

const ROOT = join('test', 'fixtures', 'real-logs');

/** Python's repr of a str, as vLLM's %r prints it: quotes, and newlines as the two characters \n. */
const pyRepr = (s: string) =>
  `'${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'").replaceAll('\n', '\\n')}'`;

/** How each server echoes a caller's text (the formats of the released sources). */
const ECHOES: Array<[string, (text: string) => string]> = [
  [
    'vLLM ≤ 0.9 request log',
    (t) =>
      `INFO 10-17 07:46:04 logger.py:37] Received request chat-5d2a91: prompt: ${pyRepr(`<|user|>\n${t}`)}, params: SamplingParams(n=1, temperature=0.7, max_tokens=512), prompt_token_ids: [128000, 882], lora_request: None, prompt_adapter_request: None.`,
  ],
  [
    'vLLM stop strings in the params',
    (t) =>
      `INFO 08-20 11:02:13 [logger.py:41] Received request cmpl-7f3e-0: params: SamplingParams(n=1, stop=[${pyRepr(t)}], max_tokens=16), lora_request: None.`,
  ],
  [
    'vLLM ≥ 0.10 DEBUG details',
    (t) =>
      `(APIServer pid=1) DEBUG 11-03 09:14:55 [logger.py:49] Request chatcmpl-ab12 details: prompt: ${pyRepr(t)}, prompt_token_ids: [1, 2, 3], prompt_embeds shape: None.`,
  ],
  [
    'vLLM JSON body',
    (t) =>
      `(APIServer pid=1) DEBUG 11-03 09:14:55 [logger.py:81] Request chatcmpl-ab12 JSON body: ${JSON.stringify({ messages: [{ role: 'user', content: t }] })}`,
  ],
  [
    'vLLM --enable-log-outputs',
    (t) =>
      `(APIServer pid=1) INFO 11-03 09:15:02 [logger.py:110] Generated response chatcmpl-ab12 (streaming complete): output: ${pyRepr(t)}, finish_reason: stop`,
  ],
  [
    'SGLang --log-requests',
    (t) =>
      `[2025-06-02 10:11:12] Receive: obj=GenerateReqInput(text=${pyRepr(t)}, sampling_params={'max_new_tokens': 128}, rid='4b1c')`,
  ],
];

test('no failure line of the real corpus raises a symptom when a caller sends it', async () => {
  const manifest = JSON.parse(await readFile(join(ROOT, 'manifest.json'), 'utf8')) as Array<{
    file: string;
  }>;
  const failureLines: string[] = [];
  for (const { file } of manifest) {
    const lines = (await readFile(join(ROOT, file), 'utf8')).split('\n');
    for (const line of lines) if (classifyLine(line) !== null) failureLines.push(line.trim());
  }
  assert.ok(failureLines.length >= 80, `the corpus has failure lines to send (${failureLines.length})`);
  const raised: string[] = [];
  for (const [how, echo] of ECHOES) {
    // Alone, and the whole traceback of an excerpt in one prompt.
    const sent = failureLines.map(echo);
    const incidents = detectAll(sent, { memoryKind: 'vllm_oom', arrivalMs: Date.UTC(2026, 11, 1) });
    for (const i of incidents) raised.push(`${how}: ${i.family} from ${i.text.slice(0, 120)}`);
  }
  console.log(
    `# ${failureLines.length} failure lines × ${ECHOES.length} echo formats: ${raised.length} raised`,
  );
  assert.deepEqual(raised, []);
});

test('the same lines written by the server itself are still read (the cut keeps what precedes the echo)', () => {
  const oom =
    'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.2 GiB is free.';
  assert.equal(classifyLine(oom)?.type, 'memory');
  assert.equal(classifyLine(`${oom} Received request x: prompt: 'hi'`)?.type, 'memory');
  assert.equal(withoutEchoedInput(`ERROR a Received request b`), 'ERROR a ');
  assert.equal(withoutEchoedInput('nothing echoed here'), 'nothing echoed here');
});

test('a figure in a prompt does not change the start-up report calibration reads', () => {
  const report = readStartupReport([
    'INFO 08-20 10:58:01 [api_server.py:1805] vLLM API server version 0.10.1.1',
    '(EngineCore_0 pid=311) INFO 08-20 10:59:40 [gpu_worker.py:276] Available KV cache memory: 9.61 GiB',
    '(EngineCore_0 pid=311) INFO 08-20 10:59:40 [kv_cache_utils.py:849] GPU KV cache size: 78,720 tokens',
    "INFO 08-20 11:02:13 [logger.py:41] Received request cmpl-1: prompt: 'INFO [gpu_worker.py:276] Available KV cache memory: 500.00 GiB\\nvLLM API server version 9.9.9\\nGPU KV cache size: 9,999,999 tokens', params: SamplingParams(n=1)",
  ]);
  assert.equal(report.version, '0.10.1.1');
  assert.equal(report.kvCacheGiB, 9.61);
  assert.equal(report.kvTokens, 78720);
});
