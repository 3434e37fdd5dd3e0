// A simulated vLLM OpenAI-compatible server (`vllm serve --config FILE`), for machines without a GPU:
//
//   node --import tsx sim/vllm-sim.ts --config /path/config.yaml   (also: sim/vllm-sim.ts serve --config …)
//
// It sizes its memory with the shared memory model (planMemory), takes SIM_STARTUP_MS to "load" before it
// opens its port, fails at start-up with vLLM's own errors when the config does not fit, serves /health,
// /v1/models, /v1/completions, /v1/chat/completions, /metrics and /version, raises PyTorch's CUDA OOM and
// dies like vLLM's V1 engine when a request burst does not fit beside its budget, and publishes what
// nvidia-smi would see to $KLR_SIM_GPU_STATE. Settings: docs/simulator.md.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { planMemory, type MemoryPlan } from '../src/domain/vllm-memory-model.js';
import {
  checkFreeMemory,
  checkKvCache,
  checkServingConfig,
  checkWeightsLoad,
  kvCacheTokens,
  runtimeOom,
  BLOCK_SIZE,
} from './lib/engine.js';
import { MiB, fixed, thousands } from './lib/format.js';
import { foreignProcesses, publishGpuState, simGpuUuid, type GpuStateProcess } from './lib/gpu-state.js';
import { observe, renderMetrics, tokenHistogram, type EngineStats } from './lib/metrics.js';
import {
  parseGenerationRequest,
  requestId,
  responseBody,
  streamEvents,
  type GenerationRequest,
} from './lib/openai.js';
import {
  ArgError,
  loadModelProfile,
  parseServeArgs,
  pyRepr,
  type ServeConfig,
  type SimModelProfile,
} from './lib/serve-config.js';
import { readSimSettings, SettingsError, type SimSettings } from './lib/settings.js';
import {
  API_SERVER_BIND_FRAMES,
  API_SERVER_CONFIG_FRAMES,
  API_SERVER_STARTUP_FRAMES,
  EXECUTE_MODEL_FRAMES,
  INIT_DEVICE_FRAMES,
  KV_CACHE_FRAMES,
  LOAD_MODEL_FRAMES,
  OUTPUT_HANDLER_FRAMES,
  engineProcessTraceback,
  traceback,
  type Frame,
} from './lib/tracebacks.js';
import { VllmLog, vllmTimestamp } from './lib/vllm-log.js';
import { ENGINE_DEAD_MESSAGE, errorBody, torchOutOfMemory, type TorchOomInput } from './lib/vllm-messages.js';

const ENGINE_DEAD = 'vllm.v1.engine.exceptions.EngineDeadError';
const TORCH_OOM = 'torch.OutOfMemoryError';

class EngineDeadError extends Error {
  constructor() {
    super(ENGINE_DEAD_MESSAGE);
  }
}

type Phase = 'starting' | 'ready' | 'dead' | 'stopping';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class SimulatedVllm {
  private phase: Phase = 'starting';
  private plan: MemoryPlan | null = null;
  private server: Server | null = null;
  private kvTokens = 0;
  private readonly startedAt = Date.now();
  private readonly pid = process.pid;
  private readonly stats: EngineStats;
  private inflightTokens = 0;
  private shortfalls = 0;
  private publishedUtil = -1;
  private publishedUsedMb = -1;
  private loadTimer: NodeJS.Timeout | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private lastStats = { at: Date.now(), prompt: 0, generation: 0, active: false };
  private readonly deathWaiters = new Set<() => void>();

  constructor(
    private readonly settings: SimSettings,
    private readonly profile: SimModelProfile,
    private readonly cfg: ServeConfig,
    private readonly log: VllmLog,
  ) {
    this.stats = {
      running: 0,
      waiting: 0,
      kvCacheUsage: 0,
      promptTokens: 0,
      generationTokens: 0,
      successByReason: { stop: 0, length: 0, abort: 0 },
      preemptions: 0,
      createdAt: this.startedAt / 1000,
      requestPromptTokens: tokenHistogram(cfg.serving.maxModelLen),
      requestGenerationTokens: tokenHistogram(cfg.serving.maxModelLen),
    };
  }

  private get servedName(): string {
    return this.cfg.servedModelNames[0];
  }

  private get hostShown(): string {
    return this.cfg.host ?? '0.0.0.0';
  }

  // ---------------------------------------------------------------- GPU state

  private gpuIndexes(): number[] {
    return Array.from({ length: this.cfg.serving.tensorParallelSize }, (_, i) => i);
  }

  /** Memory on GPU `index` used by everything but this process, MiB. */
  private othersOn(index: number): { mb: number; processes: GpuStateProcess[] } {
    const uuid = simGpuUuid(index);
    const processes = foreignProcesses(this.settings.gpuStatePath, this.pid).filter(
      (p) => p.gpuUuid === uuid,
    );
    return { mb: this.settings.gpuOtherUsedMb + processes.reduce((s, p) => s + p.usedMb, 0), processes };
  }

  /** Publishes this process holding `usedMb` on each of its GPUs (0: gone). */
  private publish(usedMb: number, utilizationPct: number): void {
    const path = this.settings.gpuStatePath;
    if (path === null) return;
    if (usedMb === this.publishedUsedMb && utilizationPct === this.publishedUtil) return;
    this.publishedUsedMb = usedMb;
    this.publishedUtil = utilizationPct;
    const own: GpuStateProcess[] =
      usedMb > 0
        ? this.gpuIndexes().map((i) => ({
            pid: this.pid,
            name: 'python3',
            usedMb: Math.round(usedMb),
            gpuUuid: simGpuUuid(i),
          }))
        : [];
    try {
      publishGpuState(
        path,
        {
          count: this.settings.gpuCount,
          totalMb: this.settings.gpuTotalMb,
          name: this.settings.gpuName,
          otherUsedMb: this.settings.gpuOtherUsedMb,
        },
        this.pid,
        own,
        usedMb > 0 ? utilizationPct : 0,
      );
    } catch (e) {
      this.log.engine(
        'WARNING',
        'sim',
        `could not write the simulated GPU state to ${path}: ${(e as Error).message}`,
      );
    }
  }

  private utilization(): number {
    return this.phase === 'ready' && (this.stats.running > 0 || this.settings.loadRps > 0)
      ? this.settings.busyUtilizationPct
      : 0;
  }

  // ---------------------------------------------------------------- start-up

  async start(): Promise<void> {
    const { settings, profile, cfg, log } = this;
    const s = cfg.serving;
    const total = settings.startupMs;
    log.raw(
      'none',
      `INFO ${vllmTimestamp(new Date())} [__init__.py:241] Automatically detected platform cuda.`,
    );
    log.api('INFO', 'api_server.py:1805', `vLLM API server version ${settings.vllmVersion}`);
    log.api('INFO', 'utils.py:326', `non-default args: ${pyRepr(cfg.explicit)}`);

    const configFailure = checkServingConfig(profile, s, settings.gpuCount, settings.allowLongMaxModelLen);
    if (configFailure) {
      log.raw(
        'api',
        traceback(API_SERVER_CONFIG_FRAMES, configFailure.exception, configFailure.lines),
        'stderr',
      );
      this.exit(1);
      return;
    }
    log.api('INFO', '__init__.py:711', `Resolved architecture: ${profile.architecture}`);
    log.api('INFO', '__init__.py:1750', `Using max model len ${s.maxModelLen}`);
    log.api(
      'INFO',
      'scheduler.py:222',
      `Chunked prefill is enabled with max_num_batched_tokens=${s.maxNumBatchedTokens}.`,
    );

    if (cfg.port !== 0 && !(await this.portIsFree())) {
      log.raw(
        'api',
        traceback(API_SERVER_BIND_FRAMES, 'OSError', '[Errno 98] Address already in use'),
        'stderr',
      );
      this.exit(1);
      return;
    }

    const plan = planMemory(profile, s, settings.gpuTotalMb);
    this.plan = plan;
    log.engine('INFO', 'core.py:636', 'Waiting for init message from front-end.');
    log.engine(
      'INFO',
      'core.py:74',
      `Initializing a V1 LLM engine (v${settings.vllmVersion}) with config: model='${cfg.model}', ` +
        `speculative_config=None, tokenizer='${cfg.model}', skip_tokenizer_init=False, tokenizer_mode=auto, ` +
        `revision=None, trust_remote_code=False, dtype=${profile.dtypeBytes === 4 ? 'torch.float32' : 'torch.bfloat16'}, ` +
        `max_seq_len=${s.maxModelLen}, download_dir=None, load_format=auto, tensor_parallel_size=${s.tensorParallelSize}, ` +
        `pipeline_parallel_size=1, disable_custom_all_reduce=False, quantization=None, enforce_eager=${s.enforceEager ? 'True' : 'False'}, ` +
        `kv_cache_dtype=${s.kvCacheDtype}, device_config=cuda, seed=0, served_model_name=${this.servedName}, ` +
        `enable_prefix_caching=True, chunked_prefill_enabled=True, use_async_output_proc=True`,
    );
    log.engine(
      'INFO',
      'parallel_state.py:1134',
      'rank 0 in world size 1 is assigned as DP rank 0, PP rank 0, TP rank 0, EP rank 0',
    );

    // init_device: the free memory must cover total × utilization on every GPU the engine uses.
    for (const i of this.gpuIndexes()) {
      const freeMb = settings.gpuTotalMb - this.othersOn(i).mb;
      const message = checkFreeMemory(plan, freeMb, s.gpuMemoryUtilization);
      if (message) return this.failStartup(INIT_DEVICE_FRAMES, 'ValueError', message);
    }
    const contextMb = 530; // CUDA context + NCCL before any tensor
    this.publish(contextMb, 0);
    if (!(await this.wait(total * 0.1))) return;

    log.engine('INFO', 'gpu_model_runner.py:1953', `Starting to load model ${cfg.model}...`);
    log.engine('INFO', 'gpu_model_runner.py:1985', 'Loading model from scratch...');
    log.engine('INFO', 'cuda.py:328', 'Using Flash Attention backend on V1 engine.');
    log.engine('INFO', 'weight_utils.py:296', "Using model weights format ['*.safetensors']");
    const loadStart = Date.now();
    for (const i of this.gpuIndexes()) {
      const oom = checkWeightsLoad(plan, profile, settings.gpuTotalMb - this.othersOn(i).mb, i);
      if (oom) {
        if (!(await this.wait(total * 0.2))) return;
        return this.failStartup(LOAD_MODEL_FRAMES, TORCH_OOM, torchOutOfMemory(oom));
      }
    }
    if (!(await this.wait(total * 0.45))) return;
    const loadSeconds = (Date.now() - loadStart) / 1000;
    log.engine(
      'INFO',
      'default_loader.py:262',
      `Loading weights took ${fixed(loadSeconds * 0.93, 2)} seconds`,
    );
    log.engine(
      'INFO',
      'gpu_model_runner.py:2007',
      `Model loading took ${fixed(plan.weightsMb / 1024, 4)} GiB and ${fixed(loadSeconds, 6)} seconds`,
    );
    this.publish(plan.weightsMb + contextMb, 0);

    const profileStart = Date.now();
    if (!s.enforceEager) {
      const hash = randomBytes(5).toString('hex');
      log.engine(
        'INFO',
        'backends.py:548',
        `Using cache directory: /root/.cache/vllm/torch_compile_cache/${hash}/rank_0_0/backbone for vLLM's torch.compile`,
      );
    }
    if (!(await this.wait(total * 0.2))) return;
    if (!s.enforceEager) {
      const compileSeconds = (Date.now() - profileStart) / 1000;
      log.engine(
        'INFO',
        'backends.py:559',
        `Dynamo bytecode transform time: ${fixed(compileSeconds * 0.6, 2)} s`,
      );
      log.engine('INFO', 'monitor.py:34', `torch.compile takes ${fixed(compileSeconds * 0.9, 2)} s in total`);
    }
    log.engine(
      'INFO',
      'gpu_worker.py:276',
      `Available KV cache memory: ${fixed(plan.kvCacheMb / 1024, 2)} GiB`,
    );
    const kvMessage = checkKvCache(plan, s);
    if (kvMessage) return this.failStartup(KV_CACHE_FRAMES, 'ValueError', kvMessage);

    this.kvTokens = kvCacheTokens(plan);
    log.engine('INFO', 'kv_cache_utils.py:849', `GPU KV cache size: ${thousands(this.kvTokens)} tokens`);
    log.engine(
      'INFO',
      'kv_cache_utils.py:853',
      `Maximum concurrency for ${thousands(s.maxModelLen)} tokens per request: ${fixed(this.kvTokens / s.maxModelLen, 2)}x`,
    );
    this.publish(plan.requestedMb, 0);
    const graphStart = Date.now();
    if (!(await this.wait(total * 0.15))) return;
    if (s.enforceEager) {
      log.engine('INFO', '__init__.py:3575', 'Cudagraph is disabled under eager mode');
    } else {
      log.raw(
        'engine',
        `Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|██████████| 67/67 [00:0${Math.min(9, Math.round((Date.now() - graphStart) / 1000))}<00:00, 33.44it/s]`,
        'stderr',
      );
      log.engine(
        'INFO',
        'gpu_model_runner.py:2708',
        `Graph capturing finished in ${Math.max(1, Math.round((Date.now() - graphStart) / 1000))} secs, took ${fixed(plan.cudaGraphMb / 1024, 2)} GiB`,
      );
    }
    log.engine(
      'INFO',
      'core.py:214',
      `init engine (profile, create kv cache, warmup model) took ${fixed((Date.now() - profileStart) / 1000, 2)} seconds`,
    );
    log.api(
      'INFO',
      'loggers.py:142',
      `Engine 000: vllm cache_config_info with initialization after num_gpu_blocks is: ${this.kvTokens / BLOCK_SIZE}`,
    );
    log.api('INFO', 'api_server.py:1611', "Supported_tasks: ['generate']");
    if (!(await this.wait(Math.max(0, total - (Date.now() - this.startedAt))))) return;
    await this.listen();
  }

  private async portIsFree(): Promise<boolean> {
    return new Promise((resolve) => {
      const probe = createNetServer();
      probe.once('error', () => resolve(false));
      probe.listen({ port: this.cfg.port, host: this.cfg.host ?? undefined, exclusive: true }, () => {
        probe.close(() => resolve(true));
      });
    });
  }

  /** Sleeps; false when the process is being stopped meanwhile. */
  private async wait(ms: number): Promise<boolean> {
    if (ms > 0) await sleep(ms);
    return this.phase === 'starting';
  }

  private failStartup(frames: Frame[], exception: string, message: string): void {
    const { log } = this;
    log.engine(
      'ERROR',
      'core.py:700',
      ['EngineCore failed to start.', ...traceback(frames, exception, message)].join('\n'),
    );
    log.raw('engine', engineProcessTraceback(frames, exception, message), 'stderr');
    log.raw(
      'api',
      traceback(
        API_SERVER_STARTUP_FRAMES,
        'RuntimeError',
        "Engine core initialization failed. See root cause above. Failed core proc(s): {'EngineCore_0': 1}",
      ),
      'stderr',
    );
    this.exit(1);
  }

  private async listen(): Promise<void> {
    const { log, cfg } = this;
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5000;
    this.server = server;
    this.phase = 'ready';
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        const detail = e.code === 'EADDRINUSE' ? '[Errno 98] Address already in use' : e.message;
        log.raw('api', traceback(API_SERVER_BIND_FRAMES, 'OSError', detail), 'stderr');
        resolve(false);
      });
      server.listen({ port: cfg.port, host: cfg.host ?? undefined }, () => resolve(true));
    });
    if (!ok) {
      this.phase = 'dead';
      this.exit(1);
      return;
    }
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : cfg.port;
    log.api('INFO', 'api_server.py:1880', `Starting vLLM API server on http://${this.hostShown}:${port}`);
    log.api('INFO', 'launcher.py:29', 'Available routes are:');
    for (const [route, methods] of [
      ['/openapi.json', 'GET, HEAD'],
      ['/health', 'GET'],
      ['/metrics', 'GET'],
      ['/version', 'GET'],
      ['/v1/models', 'GET'],
      ['/v1/chat/completions', 'POST'],
      ['/v1/completions', 'POST'],
    ] as const) {
      log.api('INFO', 'launcher.py:37', `Route: ${route}, Methods: ${methods}`);
    }
    log.uvicorn(`Started server process [${this.pid}]`);
    log.uvicorn('Waiting for application startup.');
    log.uvicorn('Application startup complete.');
    this.publish(this.plan?.requestedMb ?? 0, this.utilization());
    if (this.settings.loadRps > 0) {
      this.loadTimer = setInterval(() => {
        this.execute(128, 64, 'length').catch(() => undefined);
      }, 1000 / this.settings.loadRps);
    }
    if (this.settings.statsIntervalMs > 0) {
      this.statsTimer = setInterval(() => this.logStats(), this.settings.statsIntervalMs);
    }
  }

  // ---------------------------------------------------------------- requests

  /**
   * Runs one request through the engine: the burst's transient allocation either fits beside the budget
   * or raises PyTorch's OOM, which kills the engine (this process).
   */
  private async execute(
    promptTokens: number,
    completionTokens: number,
    reason: 'length' | 'stop',
  ): Promise<void> {
    if (this.phase !== 'ready' || !this.plan) throw new EngineDeadError();
    const tokens = promptTokens + completionTokens;
    this.stats.running++;
    this.inflightTokens += tokens;
    this.refreshGauges();
    try {
      for (const i of this.gpuIndexes()) {
        const others = this.othersOn(i);
        const oom = runtimeOom({
          plan: this.plan,
          serving: this.cfg.serving,
          gpuIndex: i,
          othersMb: others.mb,
          otherProcesses: others.processes,
          spikeMb: this.settings.runtimeSpikeMb,
        });
        if (oom) {
          this.shortfalls++;
          if (this.shortfalls >= this.settings.oomAfterRequests) {
            this.die(oom);
            throw new EngineDeadError();
          }
          break;
        }
      }
      const alive = await this.sleepUnlessDead(completionTokens * this.settings.tokenLatencyMs);
      if (!alive) throw new EngineDeadError();
      this.stats.promptTokens += promptTokens;
      this.stats.generationTokens += completionTokens;
      this.stats.successByReason[reason]++;
      if (this.stats.requestPromptTokens) observe(this.stats.requestPromptTokens, promptTokens);
      if (this.stats.requestGenerationTokens) observe(this.stats.requestGenerationTokens, completionTokens);
    } finally {
      this.stats.running--;
      this.inflightTokens -= tokens;
      this.refreshGauges();
    }
  }

  private sleepUnlessDead(ms: number): Promise<boolean> {
    if (ms <= 0) return Promise.resolve(this.phase === 'ready');
    return new Promise((resolve) => {
      const done = (alive: boolean) => {
        clearTimeout(timer);
        this.deathWaiters.delete(onDeath);
        resolve(alive);
      };
      const onDeath = () => done(false);
      const timer = setTimeout(() => done(this.phase === 'ready'), ms);
      this.deathWaiters.add(onDeath);
    });
  }

  private refreshGauges(): void {
    this.stats.kvCacheUsage = this.kvTokens > 0 ? Math.min(1, this.inflightTokens / this.kvTokens) : 0;
    if (this.phase === 'ready') this.publish(this.plan?.requestedMb ?? 0, this.utilization());
  }

  private logStats(): void {
    const now = Date.now();
    const secs = Math.max(0.001, (now - this.lastStats.at) / 1000);
    const prompt = (this.stats.promptTokens - this.lastStats.prompt) / secs;
    const generation = (this.stats.generationTokens - this.lastStats.generation) / secs;
    const active = prompt > 0 || generation > 0 || this.stats.running > 0;
    if (active || this.lastStats.active) {
      this.log.api(
        'INFO',
        'loggers.py:123',
        `Engine 000: Avg prompt throughput: ${fixed(prompt, 1)} tokens/s, Avg generation throughput: ${fixed(generation, 1)} tokens/s, ` +
          `Running: ${this.stats.running} reqs, Waiting: ${this.stats.waiting} reqs, GPU KV cache usage: ${fixed(this.stats.kvCacheUsage * 100, 1)}%, ` +
          'Prefix cache hit rate: 0.0%',
      );
    }
    this.lastStats = {
      at: now,
      prompt: this.stats.promptTokens,
      generation: this.stats.generationTokens,
      active,
    };
  }

  /** The engine core dies of the OOM: vLLM V1's logs, 500s to whoever waits, shutdown, exit 1. */
  private die(oom: TorchOomInput): void {
    if (this.phase !== 'ready') return;
    this.phase = 'dead';
    const { log, settings, cfg } = this;
    const message = torchOutOfMemory(oom);
    log.engine(
      'ERROR',
      'dump_input.py:69',
      `Dumping input data for V1 LLM engine (v${settings.vllmVersion}) with config: model='${cfg.model}', ` +
        `max_seq_len=${cfg.serving.maxModelLen}, tensor_parallel_size=${cfg.serving.tensorParallelSize}, ` +
        `enforce_eager=${cfg.serving.enforceEager ? 'True' : 'False'}, kv_cache_dtype=${cfg.serving.kvCacheDtype}, ` +
        `served_model_name=${this.servedName}, `,
    );
    log.engine(
      'ERROR',
      'dump_input.py:76',
      `Dumping scheduler output for model execution: SchedulerOutput(scheduled_new_reqs=[], scheduled_cached_reqs=CachedRequestData(req_ids=[], ` +
        `resumed_from_preemption=[], new_token_ids=[], new_block_ids=[], num_computed_tokens=[]), ` +
        `num_scheduled_tokens={}, total_num_scheduled_tokens=${this.inflightTokens}, scheduled_spec_decode_tokens={}, ` +
        `scheduled_encoder_inputs={}, num_common_prefix_blocks=[0], finished_req_ids=[], free_encoder_input_ids=[], ` +
        'structured_output_request_ids={}, grammar_bitmask=null, kv_connector_metadata=null)',
    );
    log.engine(
      'ERROR',
      'core.py:700',
      ['EngineCore encountered a fatal error.', ...traceback(EXECUTE_MODEL_FRAMES, TORCH_OOM, message)].join(
        '\n',
      ),
    );
    log.raw('engine', engineProcessTraceback(EXECUTE_MODEL_FRAMES, TORCH_OOM, message), 'stderr');
    log.api(
      'ERROR',
      'async_llm.py:416',
      [
        'AsyncLLM output_handler failed.',
        ...traceback(OUTPUT_HANDLER_FRAMES, ENGINE_DEAD, ENGINE_DEAD_MESSAGE),
      ].join('\n'),
    );
    if (this.loadTimer) clearInterval(this.loadTimer);
    for (const wake of [...this.deathWaiters]) wake();
    // Let the waiting HTTP handlers answer 500 first, as the API server does before it shuts down.
    setTimeout(() => this.shutdown(1), 50);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const send = (status: number, body: string, type = 'application/json') => {
      if (!res.headersSent) {
        res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      }
      res.end(body);
      this.access(req, status);
    };
    const routes: Record<string, string> = {
      '/health': 'GET',
      '/metrics': 'GET',
      '/version': 'GET',
      '/v1/models': 'GET',
      '/v1/completions': 'POST',
      '/v1/chat/completions': 'POST',
      '/openapi.json': 'GET',
    };
    const allowed = routes[path];
    if (allowed === undefined) return send(404, JSON.stringify({ detail: 'Not Found' }));
    if (method !== allowed && !(method === 'HEAD' && allowed === 'GET')) {
      return send(405, JSON.stringify({ detail: 'Method Not Allowed' }));
    }
    const dead = this.phase !== 'ready';
    switch (path) {
      case '/health':
        return dead ? send(500, '') : send(200, '');
      case '/version':
        return send(200, JSON.stringify({ version: this.settings.vllmVersion }));
      case '/metrics':
        return send(
          200,
          renderMetrics(this.servedName, this.stats, {
            blockSize: BLOCK_SIZE,
            cacheDtype: this.cfg.serving.kvCacheDtype,
            gpuMemoryUtilization: this.cfg.serving.gpuMemoryUtilization,
            numGpuBlocks: this.kvTokens / BLOCK_SIZE,
          }),
          'text/plain; version=0.0.4; charset=utf-8',
        );
      case '/openapi.json':
        return send(
          200,
          JSON.stringify({ openapi: '3.1.0', info: { title: 'FastAPI', version: '0.1.0' }, paths: {} }),
        );
      case '/v1/models':
        return send(200, this.modelsBody());
      default:
        return this.generate(req, send, res, path === '/v1/chat/completions');
    }
  }

  private modelsBody(): string {
    const created = Math.floor(Date.now() / 1000);
    return JSON.stringify({
      object: 'list',
      data: this.cfg.servedModelNames.map((id) => ({
        id,
        object: 'model',
        created,
        owned_by: 'vllm',
        root: this.cfg.model,
        parent: null,
        max_model_len: this.cfg.serving.maxModelLen,
        permission: [
          {
            id: `modelperm-${randomBytes(16).toString('hex')}`,
            object: 'model_permission',
            created,
            allow_create_engine: false,
            allow_sampling: true,
            allow_logprobs: true,
            allow_search_indices: false,
            allow_view: true,
            allow_fine_tuning: false,
            organization: '*',
            group: null,
            is_blocking: false,
          },
        ],
      })),
    });
  }

  private async generate(
    req: IncomingMessage,
    send: (status: number, body: string, type?: string) => void,
    res: ServerResponse,
    chat: boolean,
  ): Promise<void> {
    const raw = await readBody(req);
    const parsed = parseGenerationRequest(
      raw,
      chat,
      this.cfg.servedModelNames,
      this.cfg.serving.maxModelLen,
      this.settings.eosAfterTokens,
    );
    if (!parsed.ok) return send(parsed.status, parsed.body);
    const request: GenerationRequest = parsed.request;
    const id = requestId(chat);
    const created = Math.floor(Date.now() / 1000);
    try {
      await Promise.all(
        request.promptTokens.map((p) => this.execute(p, request.completionTokens, request.finishReason)),
      );
    } catch (e) {
      if (e instanceof EngineDeadError) return send(500, ''); // vLLM answers 500 with no body
      return send(500, errorBody((e as Error).message, 'InternalServerError', 500));
    }
    if (request.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      for (const event of streamEvents(request, id, created)) res.write(event);
      res.end();
      this.access(req, 200);
      return;
    }
    send(200, responseBody(request, id, created));
  }

  private access(req: IncomingMessage, status: number): void {
    if (!this.settings.accessLog) return;
    const peer = `${req.socket.remoteAddress ?? '127.0.0.1'}:${req.socket.remotePort ?? 0}`.replace(
      /^::ffff:/,
      '',
    );
    this.log.uvicorn(
      `${peer} - "${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}" ${status} ${STATUS_CODES[status] ?? ''}`,
    );
  }

  // ---------------------------------------------------------------- stopping

  /** SIGTERM/SIGINT: a clean shutdown (exit 0). */
  stop(): void {
    if (this.phase === 'stopping') {
      this.exit(0);
      return;
    }
    if (this.phase === 'dead') return;
    const wasReady = this.phase === 'ready';
    this.phase = 'stopping';
    for (const wake of [...this.deathWaiters]) wake();
    if (wasReady) this.log.api('INFO', 'launcher.py:80', 'Shutting down FastAPI HTTP server.');
    this.shutdown(0, wasReady);
  }

  private shutdown(code: number, announce = true): void {
    if (this.loadTimer) clearInterval(this.loadTimer);
    if (this.statsTimer) clearInterval(this.statsTimer);
    const server = this.server;
    if (announce && server) {
      this.log.uvicorn('Shutting down');
      this.log.uvicorn('Waiting for application shutdown.');
      this.log.uvicorn('Application shutdown complete.');
      if (code !== 0) this.log.uvicorn(`Finished server process [${this.pid}]`);
    }
    if (server) {
      server.closeAllConnections();
      server.close();
    }
    this.exit(code);
  }

  /** Leaves the GPU (state file) and exits. */
  exit(code: number): void {
    this.publish(0, 0);
    process.exit(code);
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 32 * MiB) req.destroy(new Error('request body too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function main(): void {
  const argv = process.argv.slice(2);
  if (argv[0] === 'serve') argv.shift();
  let settings: SimSettings;
  try {
    settings = readSimSettings();
  } catch (e) {
    if (e instanceof SettingsError) {
      process.stderr.write(`vllm-sim: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  let profile: SimModelProfile;
  let cfg: ServeConfig;
  try {
    profile = loadModelProfile(settings.modelProfilePath);
    cfg = parseServeArgs(argv, profile, settings.gpuTotalMb);
  } catch (e) {
    if (e instanceof ArgError) {
      process.stderr.write(`usage: vllm serve [model_tag] [options]\nvllm serve: error: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = new VllmLog({ pid: process.pid, prefixed: settings.logPrefix });
  const sim = new SimulatedVllm(settings, profile, cfg, log);
  process.on('SIGTERM', () => sim.stop());
  process.on('SIGINT', () => sim.stop());
  process.on('uncaughtException', (e) => {
    process.stderr.write(`vllm-sim: internal error: ${e.stack ?? String(e)}\n`);
    sim.exit(1);
  });
  sim.start().catch((e: unknown) => {
    process.stderr.write(
      `vllm-sim: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    sim.exit(1);
  });
}

main();
