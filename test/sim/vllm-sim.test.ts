// The simulated vLLM and its supervisor as real processes on loopback: start-up, the OpenAI endpoints,
// vLLM's start-up failures, the run-time CUDA OOM, the GPU state file, and restarts through the
// supervisor. Every test checks that no process it started is left running.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIM_ARGS, SUPERVISOR_ARGS } from '../support/programs.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVED = 'sim-llama';
/** A broken simulator must fail a test, not hang the run. */
const LIMIT = { timeout: 60_000 };

// ------------------------------------------------------------------ helpers

/** Every pid a test started (directly or through the supervisor): all must be gone after the test. */
const pids = new Set<number>();
const dirs: string[] = [];

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

afterEach(async () => {
  const survivors: number[] = [];
  for (const pid of pids) {
    // A process still exiting gets a moment; anything still there is a leak.
    const gone = await waitFor(`pid ${pid} to exit`, () => !isAlive(pid), 3000).catch(() => false);
    if (!gone) {
      survivors.push(pid);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // raced with its exit
      }
    }
  }
  pids.clear();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(survivors, [], 'processes left running after the test');
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kloros-sim-'));
  dirs.push(dir);
  return dir;
}

async function freePort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function writeConfig(
  dir: string,
  port: number,
  extra: Record<string, string | number | boolean> = {},
): string {
  const file = join(dir, 'vllm.yaml');
  const values: Record<string, string | number | boolean> = {
    model: 'meta-llama/Llama-3.1-8B-Instruct',
    'served-model-name': SERVED,
    host: '127.0.0.1',
    port,
    'max-model-len': 8192,
    ...extra,
  };
  writeFileSync(
    file,
    Object.entries(values)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n') + '\n',
  );
  return file;
}

interface Proc {
  child: ChildProcess;
  pid: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function launch(args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, SIM_STARTUP_MS: '300', SIM_STATS_INTERVAL_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${args.join(' ')}`);
  pids.add(child.pid);
  let text = '';
  child.stdout?.on('data', (c: Buffer) => (text += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { child, pid: child.pid, output: () => text, exited };
}

function launchSim(config: string, env: Record<string, string> = {}): Proc {
  return launch([...SIM_ARGS, '--config', config], env);
}

async function ready(p: Proc): Promise<void> {
  await waitFor('"Application startup complete."', () => {
    if (p.child.exitCode !== null) throw new Error(`the simulator exited early:\n${p.output()}`);
    return p.output().includes('Application startup complete.');
  });
}

async function complete(port: number, body: Record<string, unknown>): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

interface GpuStateFile {
  gpus: {
    index: number;
    uuid: string;
    name: string;
    totalMb: number;
    usedMb: number;
    utilizationPct: number;
  }[];
  processes: { pid: number; name: string; usedMb: number; gpuUuid: string }[];
}

const readState = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as GpuStateFile;

// ------------------------------------------------------------------ the simulator

test(
  'a fitting config loads for SIM_STARTUP_MS with the port closed, then serves like vLLM and publishes its GPU memory',
  LIMIT,
  async () => {
    const dir = tempDir();
    const port = await freePort();
    const statePath = join(dir, 'gpu-state.json');
    const started = Date.now();
    const sim = launchSim(writeConfig(dir, port, { 'gpu-memory-utilization': 0.9 }), {
      SIM_STARTUP_MS: '1500',
      KLR_SIM_GPU_STATE: statePath,
    });
    await waitFor('weights loading', () => sim.output().includes('Loading model from scratch...'));
    assert.equal(await portOpen(port), false, 'the port must stay closed while the model loads');
    await ready(sim);
    assert.ok(Date.now() - started >= 1500, 'start-up takes at least SIM_STARTUP_MS');
    const log = sim.output();
    assert.match(
      log,
      /INFO \d\d-\d\d \d\d:\d\d:\d\d \[[\w.]+\.py:\d+\] Loading weights took \d+\.\d\d seconds/,
    );
    assert.match(log, /\[gpu_worker\.py:\d+\] Available KV cache memory: \d+\.\d\d GiB/);
    assert.match(log, /\[kv_cache_utils\.py:\d+\] GPU KV cache size: \d{1,3}(,\d{3})* tokens/);
    assert.match(log, /Maximum concurrency for 8,192 tokens per request: \d+\.\d\dx/);
    assert.ok(log.includes(`Starting vLLM API server on http://127.0.0.1:${port}`));
    assert.ok(log.includes(`(APIServer pid=${sim.pid}) INFO:     Started server process [${sim.pid}]`));

    const health = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), '');

    const models = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as {
      object: string;
      data: { id: string; object: string; owned_by: string; max_model_len: number }[];
    };
    assert.equal(models.object, 'list');
    assert.deepEqual(
      models.data.map((m) => [m.id, m.object, m.owned_by, m.max_model_len]),
      [[SERVED, 'model', 'vllm', 8192]],
    );

    const ok = await complete(port, { model: SERVED, prompt: 'Say something deterministic.', max_tokens: 8 });
    assert.equal(ok.status, 200);
    const completion = (await ok.json()) as {
      id: string;
      object: string;
      model: string;
      choices: { text: string; finish_reason: string }[];
      usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    };
    assert.match(completion.id, /^cmpl-[0-9a-f]{32}$/);
    assert.equal(completion.object, 'text_completion');
    assert.equal(completion.model, SERVED);
    assert.equal(completion.choices.length, 1);
    assert.equal(completion.choices[0]?.finish_reason, 'length');
    assert.equal(completion.choices[0]?.text.trim().split(/\s+/).length, 8);
    assert.equal(completion.usage.completion_tokens, 8);
    assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + 8);

    const chat = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: SERVED, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
    });
    assert.equal(chat.status, 200);
    assert.equal(((await chat.json()) as { object: string }).object, 'chat.completion');

    const wrong = await complete(port, { model: 'gpt-4', prompt: 'x' });
    assert.equal(wrong.status, 404);
    assert.deepEqual(await wrong.json(), {
      object: 'error',
      message: 'The model `gpt-4` does not exist.',
      type: 'NotFoundError',
      param: null,
      code: 404,
    });
    const tooLong = await complete(port, { model: SERVED, prompt: 'x', max_tokens: 9000 });
    assert.equal(tooLong.status, 400);
    assert.match(
      ((await tooLong.json()) as { message: string }).message,
      /maximum context length is 8192 tokens/,
    );

    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const labels = `{engine="0",model_name="${SERVED}"}`;
    for (const name of [
      'vllm:num_requests_running',
      'vllm:num_requests_waiting',
      'vllm:gpu_cache_usage_perc',
      'vllm:kv_cache_usage_perc',
    ]) {
      assert.ok(metrics.includes(`\n${name}${labels} 0.0\n`), `${name} in /metrics`);
    }
    assert.ok(
      metrics.includes(`\nvllm:generation_tokens_total${labels} 12.0\n`),
      'generation tokens counted (8 + 4)',
    );
    assert.match(
      metrics,
      new RegExp(`\\nvllm:prompt_tokens_total\\{engine="0",model_name="${SERVED}"\\} [1-9]\\d*\\.0\\n`),
    );

    const version = (await (await fetch(`http://127.0.0.1:${port}/version`)).json()) as { version: string };
    assert.match(version.version, /^\d+\.\d+\.\d+/);

    const state = readState(statePath);
    assert.equal(state.gpus.length, 1);
    const gpu = state.gpus[0];
    assert.ok(gpu);
    assert.equal(gpu.index, 0);
    assert.equal(gpu.name, 'NVIDIA H100 80GB HBM3');
    assert.equal(gpu.totalMb, 81559);
    assert.match(gpu.uuid, /^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.deepEqual(state.processes, [{ pid: sim.pid, name: 'python3', usedMb: 73403, gpuUuid: gpu.uuid }]);
    assert.equal(gpu.usedMb, 73403, 'used = others (0) + 0.9 × 81559');

    sim.child.kill('SIGTERM');
    assert.deepEqual(await sim.exited, { code: 0, signal: null });
    assert.match(sim.output(), /Shutting down FastAPI HTTP server\./);
    const after = readState(statePath);
    assert.deepEqual(after.processes, [], 'the process entry is removed on exit');
    assert.equal(after.gpus[0]?.usedMb, 0);
  },
);

const FREE_MEMORY =
  'ValueError: Free memory on device (69.88/79.65 GiB) on startup is less than desired GPU memory utilization ' +
  '(0.9, 71.68 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.';

async function expectStartupFailure(sim: Proc, statePath: string, text: string | RegExp): Promise<string> {
  const { code } = await sim.exited;
  const out = sim.output();
  assert.equal(code, 1, `exit code 1 expected, output:\n${out}`);
  if (typeof text === 'string') assert.ok(out.includes(text), `"${text}" expected in:\n${out}`);
  else assert.match(out, text);
  assert.match(out, /ERROR \d\d-\d\d [\d:]+ \[core\.py:\d+\] EngineCore failed to start\./);
  assert.match(out, /Traceback \(most recent call last\):/);
  assert.match(out, /RuntimeError: Engine core initialization failed\. See root cause above\./);
  assert.ok(!out.includes('Starting vLLM API server'), 'the port is never opened');
  assert.deepEqual(readState(statePath).processes, [], 'no GPU memory is left held');
  return out;
}

test(
  'start-up fails like vLLM when other processes leave less free memory than requested',
  LIMIT,
  async () => {
    const dir = tempDir();
    const statePath = join(dir, 'gpu-state.json');
    const sim = launchSim(writeConfig(dir, await freePort(), { 'gpu-memory-utilization': 0.9 }), {
      SIM_GPU_OTHER_USED_MB: '10000',
      KLR_SIM_GPU_STATE: statePath,
    });
    await expectStartupFailure(sim, statePath, FREE_MEMORY);
  },
);

test('memory of another live process in the GPU state file counts as used', LIMIT, async () => {
  const dir = tempDir();
  const statePath = join(dir, 'gpu-state.json');
  // This test process stands in for another service holding 10000 MiB on GPU 0.
  writeFileSync(
    statePath,
    JSON.stringify({
      gpus: [],
      processes: [
        {
          pid: process.pid,
          name: 'python3',
          usedMb: 10000,
          gpuUuid: 'GPU-5f3c2a1e-8d4b-4c6e-9a7f-1b2c3d4e5f60',
        },
      ],
    }),
  );
  const sim = launchSim(writeConfig(dir, await freePort(), { 'gpu-memory-utilization': 0.9 }), {
    KLR_SIM_GPU_STATE: statePath,
  });
  const { code } = await sim.exited;
  assert.equal(code, 1);
  assert.ok(sim.output().includes(FREE_MEMORY), sim.output());
  assert.deepEqual(
    readState(statePath).processes.map((p) => p.pid),
    [process.pid],
    "the other process's entry stays",
  );
});

test('start-up fails like vLLM when nothing is left for the KV cache', LIMIT, async () => {
  const dir = tempDir();
  const statePath = join(dir, 'gpu-state.json');
  const sim = launchSim(writeConfig(dir, await freePort(), { 'gpu-memory-utilization': 0.15 }), {
    KLR_SIM_GPU_STATE: statePath,
  });
  const out = await expectStartupFailure(
    sim,
    statePath,
    'ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.',
  );
  assert.match(out, /Available KV cache memory: -\d+\.\d\d GiB/);
});

test(
  'start-up fails like vLLM when one max_model_len request does not fit in the KV cache',
  LIMIT,
  async () => {
    const dir = tempDir();
    const statePath = join(dir, 'gpu-state.json');
    const sim = launchSim(
      writeConfig(dir, await freePort(), { 'gpu-memory-utilization': 0.3, 'max-model-len': 131072 }),
      { KLR_SIM_GPU_STATE: statePath },
    );
    const out = await expectStartupFailure(
      sim,
      statePath,
      /ValueError: To serve at least one request with the models's max seq len \(131072\), \(16\.00 GiB KV cache is needed, which is larger than the available KV cache memory \(\d+\.\d\d GiB\)\. Based on the available memory, the estimated maximum model length is \d+\. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine\./,
    );
    const available = Number(/available KV cache memory \((\d+\.\d\d) GiB\)/.exec(out)?.[1]);
    const logged = Number(/Available KV cache memory: (\d+\.\d\d) GiB/.exec(out)?.[1]);
    const estimate = Number(/estimated maximum model length is (\d+)\./.exec(out)?.[1]);
    assert.equal(available, logged, 'the error quotes the logged KV cache memory');
    assert.ok(available > 0 && available < 16);
    assert.ok(estimate > 0 && estimate < 131072);
  },
);

test('bad configs are refused before the engine starts', LIMIT, async () => {
  const dir = tempDir();
  const statePath = join(dir, 'gpu-state.json');
  const high = launchSim(writeConfig(dir, await freePort(), { 'gpu-memory-utilization': 1.5 }), {
    KLR_SIM_GPU_STATE: statePath,
  });
  assert.equal((await high.exited).code, 1);
  assert.match(
    high.output(),
    /Input should be less than or equal to 1 \[type=less_than_equal, input_value=1\.5/,
  );

  const badPort = launch([...SIM_ARGS, '--config', writeConfig(dir, await freePort()), '--port', 'http'], {});
  assert.equal((await badPort.exited).code, 2);
  assert.match(badPort.output(), /vllm serve: error: argument --port: invalid int value: 'http'/);

  const badEnv = launchSim(writeConfig(dir, await freePort()), { SIM_LOAD: 'lots' });
  assert.equal((await badEnv.exited).code, 2);
  assert.match(badEnv.output(), /SIM_LOAD="lots" is not valid: expected a number/);

  const busy: Server = createServer();
  const port = await freePort();
  await new Promise<void>((r) => busy.listen(port, '127.0.0.1', () => r()));
  try {
    const taken = launchSim(writeConfig(dir, port), { KLR_SIM_GPU_STATE: statePath });
    assert.equal((await taken.exited).code, 1);
    assert.match(taken.output(), /OSError: \[Errno 98\] Address already in use/);
  } finally {
    await new Promise((r) => busy.close(r));
  }
});

const OOM_TEXT =
  'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.65 GiB ' +
  'of which 1.59 GiB is free. Including non-PyTorch memory, this process has 78.05 GiB memory in use.';
const ENGINE_DEAD =
  'vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.';

test(
  'a too-aggressive config starts, then a request OOMs with PyTorch text and the engine dies like V1',
  LIMIT,
  async () => {
    const dir = tempDir();
    const port = await freePort();
    const statePath = join(dir, 'gpu-state.json');
    const sim = launchSim(writeConfig(dir, port, { 'gpu-memory-utilization': 0.98 }), {
      KLR_SIM_GPU_STATE: statePath,
    });
    await ready(sim);
    assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
    assert.deepEqual(
      readState(statePath).processes.map((p) => [p.pid, p.usedMb]),
      [[sim.pid, 79928]],
      '0.98 × 81559 MiB held',
    );
    const res = await complete(port, { model: SERVED, prompt: 'hello', max_tokens: 16 });
    assert.equal(res.status, 500);
    assert.equal(await res.text(), '');
    const { code } = await sim.exited;
    assert.equal(code, 1);
    const out = sim.output();
    assert.ok(out.includes(OOM_TEXT), out);
    assert.match(
      out,
      /PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation\. {2}See documentation/,
    );
    assert.match(out, /ERROR \d\d-\d\d [\d:]+ \[core\.py:\d+\] EngineCore encountered a fatal error\./);
    assert.ok(out.includes(ENGINE_DEAD));
    assert.match(out, /"POST \/v1\/completions HTTP\/1\.1" 500 Internal Server Error/);
    assert.ok(out.indexOf('torch.OutOfMemoryError') < out.indexOf(ENGINE_DEAD), 'root cause first');
    assert.deepEqual(readState(statePath).processes, []);
  },
);

test(
  "the canary's probe against the simulator: a realistic request passes; max-model-len 16 refuses it like vLLM",
  LIMIT,
  async () => {
    const { ProbeError, probeCompletion } = await import('../../src/service/health.js');
    const { planProbe } = await import('../../src/service/probe-size.js');
    const dir = tempDir();
    const port = await freePort();
    // The model "emits EOS" after 8 tokens: only ignore_eos / min_tokens get the probe its 128.
    const sim = launchSim(writeConfig(dir, port, { 'gpu-memory-utilization': 0.9 }), {
      SIM_EOS_AFTER_TOKENS: '8',
      SIM_TOKEN_LATENCY_MS: '0',
    });
    await ready(sim);
    const baseUrl = `http://127.0.0.1:${port}`;
    const natural = (await (
      await complete(port, { model: SERVED, prompt: 'hi', max_tokens: 64 })
    ).json()) as {
      usage: { completion_tokens: number };
      choices: { finish_reason: string }[];
    };
    assert.deepEqual([natural.usage.completion_tokens, natural.choices[0]?.finish_reason], [8, 'stop']);

    const probe = await probeCompletion({
      baseUrl,
      model: SERVED,
      timeoutMs: 10_000,
      promptTokens: 1024,
      outputTokens: 128,
    });
    assert.deepEqual([probe.promptTokens, probe.completionTokens], [1024, 128]);

    // Traffic for the histograms: 20 requests of ~300 prompt tokens and 40 out.
    const words = Array.from({ length: 299 }, () => 'the').join(' ');
    for (let i = 0; i < 20; i++) {
      const r = await complete(port, { model: SERVED, prompt: words, max_tokens: 40, ignore_eos: true });
      assert.equal(r.status, 200);
    }
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    const labels = (le: string) => `{engine="0",le="${le}",model_name="${SERVED}"}`;
    assert.ok(metrics.includes(`\nvllm:request_prompt_tokens_bucket${labels('500.0')} 21.0\n`), metrics);
    assert.ok(metrics.includes(`\nvllm:request_generation_tokens_bucket${labels('50.0')} 21.0\n`));
    assert.ok(metrics.includes(`\nvllm:request_prompt_tokens_bucket${labels('+Inf')} 22.0\n`));
    const size = await planProbe({
      baseUrl,
      settings: undefined,
      configText: readFileSync(join(dir, 'vllm.yaml'), 'utf8'),
      configPath: join(dir, 'vllm.yaml'),
    });
    // 22 requests: 20 × 300 and the 1024-token probe in (500, 1000], and "hi": p90 rank 19.8 in (200, 500]
    // output: 8, 128 and 20 × 40: rank 19.8 in (20, 50] → 20 + 30 × 18.8 / 20 = 48.2 → 49
    assert.equal(size.outputTokens, 49);
    assert.ok(size.promptTokens > 200 && size.promptTokens <= 500, String(size.promptTokens));
    assert.match(size.source, /^prompt p90 of the service's last 22 requests; output p90 of 22 requests$/);
    sim.child.kill('SIGTERM');
    assert.equal((await sim.exited).code, 0);

    // The crippled candidate: it starts and is healthy, and a one-token ping would pass; the probe does not.
    const port2 = await freePort();
    const dir2 = tempDir();
    const crippled = launchSim(
      writeConfig(dir2, port2, { 'gpu-memory-utilization': 0.9, 'max-model-len': 16 }),
    );
    await ready(crippled);
    assert.equal((await fetch(`http://127.0.0.1:${port2}/health`)).status, 200);
    assert.equal((await complete(port2, { model: SERVED, prompt: 'ping', max_tokens: 1 })).status, 200);
    await assert.rejects(
      probeCompletion({
        baseUrl: `http://127.0.0.1:${port2}`,
        model: SERVED,
        timeoutMs: 10_000,
        promptTokens: size.promptTokens,
        outputTokens: size.outputTokens,
      }),
      (err: unknown) => {
        assert.ok(err instanceof ProbeError);
        assert.equal(err.kind, 'context');
        assert.match(err.message, /max-model-len 16\) is too short for a \d+-token prompt and 49 tokens out/);
        assert.match(
          err.message,
          /This model's maximum context length is 16 tokens\. However, you requested/,
        );
        return true;
      },
    );
    crippled.child.kill('SIGTERM');
    assert.equal((await crippled.exited).code, 0);
  },
);

test('the same load fits with room for the spike, and the OOM is deterministic', LIMIT, async () => {
  const dir = tempDir();
  const port = await freePort();
  const sim = launchSim(writeConfig(dir, port, { 'gpu-memory-utilization': 0.95 }));
  await ready(sim);
  for (let i = 0; i < 5; i++) {
    assert.equal((await complete(port, { model: SERVED, prompt: 'hello', max_tokens: 4 })).status, 200);
  }
  assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
  assert.ok(!sim.output().includes('OutOfMemoryError'));
  sim.child.kill('SIGTERM');
  assert.equal((await sim.exited).code, 0);

  // SIM_OOM_AFTER_REQUESTS=3: the third request that lacks headroom raises it.
  const port2 = await freePort();
  const third = launchSim(writeConfig(dir, port2, { 'gpu-memory-utilization': 0.98 }), {
    SIM_OOM_AFTER_REQUESTS: '3',
  });
  await ready(third);
  const statuses = [];
  for (let i = 0; i < 3; i++)
    statuses.push((await complete(port2, { model: SERVED, prompt: 'x', max_tokens: 2 })).status);
  assert.deepEqual(statuses, [200, 200, 500]);
  assert.equal((await third.exited).code, 1);
});

test('background load (SIM_LOAD) OOMs a too-aggressive config without any client', LIMIT, async () => {
  const dir = tempDir();
  const sim = launchSim(writeConfig(dir, await freePort(), { 'gpu-memory-utilization': 0.98 }), {
    SIM_LOAD: '20',
  });
  const { code } = await sim.exited;
  assert.equal(code, 1);
  assert.ok(sim.output().includes('Application startup complete.'));
  assert.ok(sim.output().includes(OOM_TEXT));
  assert.ok(sim.output().includes(ENGINE_DEAD));
});

// ------------------------------------------------------------------ the supervisor

function supervisorCli(args: string[]): Proc {
  return launch([...SUPERVISOR_ARGS, ...args], {});
}

async function cli(args: string[]): Promise<{ code: number | null; output: string }> {
  const p = supervisorCli(args);
  const { code } = await p.exited;
  return { code, output: p.output() };
}

async function status(dir: string): Promise<{
  running: boolean;
  pid: number | null;
  since: string | null;
  restarts: number;
  lastExit: { pid: number; code: number | null; signal: string | null } | null;
}> {
  const r = await cli(['status', '--state-dir', dir, '--json']);
  assert.equal(r.code, 0, r.output);
  return JSON.parse(r.output) as Awaited<ReturnType<typeof status>>;
}

function servicePid(dir: string): number | null {
  const file = join(dir, 'service.pid');
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (pid > 0) pids.add(pid);
  return pid > 0 ? pid : null;
}

async function healthy(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/health`)).status === 200;
  } catch {
    return false;
  }
}

test(
  'the supervisor runs the service, restarts it on request (new pid, log appended), reports status and stops',
  LIMIT,
  async () => {
    const dir = tempDir();
    const stateDir = join(dir, 'svc');
    const port = await freePort();
    const config = writeConfig(dir, port, { 'gpu-memory-utilization': 0.98 });
    const statePath = join(dir, 'gpu-state.json');
    const supervisor = launch(
      [
        ...SUPERVISOR_ARGS,
        'run',
        '--state-dir',
        stateDir,
        '--',
        process.execPath,
        ...SIM_ARGS,
        '--config',
        config,
      ],
      { KLR_SIM_GPU_STATE: statePath },
    );
    const pid1 = await waitFor('service.pid', () => servicePid(stateDir));
    await waitFor('the service to be healthy', () => healthy(port));
    const control = JSON.parse(readFileSync(join(stateDir, 'control.json'), 'utf8')) as {
      port: number;
      pid: number;
    };
    assert.equal(control.pid, supervisor.pid);

    const restart = await cli(['restart', '--state-dir', stateDir, '--timeout', '30s']);
    assert.equal(restart.code, 0, restart.output);
    const pid2 = servicePid(stateDir);
    assert.ok(pid2 !== null && pid2 !== pid1, `a new pid (${pid1} → ${pid2})`);
    assert.match(restart.output, new RegExp(`restarted: pid ${pid2} \\(was ${pid1}\\), restarts 1`));
    assert.equal(isAlive(pid1), false, 'the old service process is gone');
    await waitFor('the restarted service to be healthy', () => healthy(port));

    const log = readFileSync(join(stateDir, 'service.log'), 'utf8');
    assert.equal(log.match(/Application startup complete\./g)?.length, 2, 'both runs in one appended log');
    assert.ok(log.includes(`(APIServer pid=${pid1}) INFO:     Started server process [${pid1}]`));
    assert.ok(log.includes(`(APIServer pid=${pid2}) INFO:     Started server process [${pid2}]`));
    assert.ok(log.indexOf(`pid=${pid1}`) < log.indexOf(`pid=${pid2}`));
    let s = await status(stateDir);
    assert.equal(s.running, true);
    assert.equal(s.pid, pid2);
    assert.equal(s.restarts, 1);
    assert.ok(s.since !== null && !Number.isNaN(Date.parse(s.since)));

    // An OOM crash stays down (Restart=no) until restarted.
    assert.equal((await complete(port, { model: SERVED, prompt: 'x' })).status, 500);
    await waitFor('the crash to be seen', async () => !(await status(stateDir)).running);
    s = await status(stateDir);
    assert.deepEqual(s.lastExit && [s.lastExit.pid, s.lastExit.code], [pid2, 1]);
    assert.equal(existsSync(join(stateDir, 'service.pid')), false);
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal((await status(stateDir)).running, false, 'no automatic restart by default');
    const crashLog = readFileSync(join(stateDir, 'service.log'), 'utf8');
    assert.ok(crashLog.includes(OOM_TEXT));
    assert.match(
      crashLog,
      new RegExp(`Main process exited \\(pid ${pid2}\\), code=exited, status=1/FAILURE`),
    );

    assert.equal((await cli(['restart', '--state-dir', stateDir])).code, 0);
    const pid3 = servicePid(stateDir);
    assert.ok(pid3 !== null && pid3 !== pid2);
    await waitFor('the service to be healthy again', () => healthy(port));
    assert.equal((await status(stateDir)).restarts, 2);

    const stop = await cli(['stop', '--state-dir', stateDir]);
    assert.equal(stop.code, 0, stop.output);
    assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
    assert.equal(isAlive(pid3), false);
    assert.equal(existsSync(join(stateDir, 'control.json')), false);
    assert.deepEqual(readState(statePath).processes, []);
  },
);

test('restart without a supervisor fails clearly', LIMIT, async () => {
  const dir = tempDir();
  const r = await cli(['restart', '--state-dir', dir, '--timeout', '5s']);
  assert.equal(r.code, 1);
  assert.match(r.output, /supervisor: no supervisor for .*control\.json not found/);
});

test(
  '--restart-on-exit=always restarts a crashing service; SIGTERM to the supervisor stops everything',
  LIMIT,
  async () => {
    const dir = tempDir();
    const supervisor = launch(
      [
        ...SUPERVISOR_ARGS,
        'run',
        '--state-dir',
        dir,
        '--restart-on-exit=always',
        '--restart-delay',
        '100ms',
        '--',
        process.execPath,
        '-e',
        'setTimeout(() => process.exit(3), 150)',
      ],
      {},
    );
    await waitFor(
      'two automatic restarts',
      async () => existsSync(join(dir, 'control.json')) && (await status(dir)).restarts >= 2,
    );
    const log = readFileSync(join(dir, 'service.log'), 'utf8');
    assert.match(log, /code=exited, status=3\/FAILURE/);
    assert.match(log, /Scheduled restart in 100 ms \(Restart=always\)/);
    const last = servicePid(dir);
    supervisor.child.kill('SIGTERM');
    assert.deepEqual(await supervisor.exited, { code: 0, signal: null });
    if (last !== null) assert.equal(isAlive(last), false);
  },
);

test('a service that ignores SIGTERM is killed after --stop-timeout', LIMIT, async () => {
  const dir = tempDir();
  const supervisor = launch(
    [
      ...SUPERVISOR_ARGS,
      'run',
      '--state-dir',
      dir,
      '--stop-timeout',
      '300ms',
      '--',
      process.execPath,
      '-e',
      "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); setInterval(() => {}, 1000)",
    ],
    {},
  );
  const pid1 = await waitFor('service.pid', () => servicePid(dir));
  await new Promise((r) => setTimeout(r, 300)); // let it install its handler
  const r = await cli(['restart', '--state-dir', dir, '--timeout', '10s']);
  assert.equal(r.code, 0, r.output);
  assert.equal(isAlive(pid1), false);
  const log = readFileSync(join(dir, 'service.log'), 'utf8');
  assert.match(log, /ignoring SIGTERM/);
  assert.match(log, new RegExp(`did not stop within 300 ms: sending SIGKILL`));
  assert.match(log, new RegExp(`Main process exited \\(pid ${pid1}\\), code=killed, status=9/KILL`));
  servicePid(dir);
  assert.equal((await cli(['stop', '--state-dir', dir])).code, 0);
  assert.equal((await supervisor.exited).code, 0);
});
