// A simulated vLLM OpenAI-compatible server (`vllm serve --config FILE`), for machines without a GPU:
//
//   node --import tsx sim/vllm-sim.ts --config /path/config.yaml   (also: sim/vllm-sim.ts serve --config …)
//
// It sizes its memory with the shared memory model (planMemory), takes SIM_STARTUP_MS to "load" before it
// opens its port, fails at start-up with vLLM's own errors when the config does not fit, serves /health,
// /v1/models, /v1/completions, /v1/chat/completions, /metrics and /version, raises PyTorch's CUDA OOM and
// dies like vLLM's V1 engine when a request burst does not fit beside its budget, and publishes what
// nvidia-smi would see to $KLR_SIM_GPU_STATE. Its start-up log and start-up errors are worded as the release
// SIM_VLLM_VERSION printed them (V0 0.5 → V1 0.33, sim/lib/startup-wording.ts). Settings: docs/simulator.md.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { planMemory, type MemoryPlan } from '../src/domain/vllm-memory-model.js';
import {
  checkFreeMemory,
  checkServingConfig,
  checkWeightsLoad,
  kvCacheTokens,
  runtimeOom,
  BLOCK_SIZE,
} from './lib/engine.js';
import { MiB, fixed } from './lib/format.js';
import { foreignProcesses, publishGpuState, simGpuUuid, type GpuStateProcess } from './lib/gpu-state.js';
import { observe, renderMetrics, tokenHistogram, type EngineStats } from './lib/metrics.js';
import {
  parseGenerationRequest,
  requestId,
  responseBody,
  streamEvents,
  type GenerationRequest,
} from './lib/openai.js';
import { accountedPlan, accountingOf, kvAllocationOom, kvCacheRefusal } from './lib/release-engine.js';
import {
  ArgError,
  loadModelProfile,
  parseServeArgs,
  type ServeConfig,
  type SimModelProfile,
} from './lib/serve-config.js';
import { readSimSettings, SettingsError, type SimSettings } from './lib/settings.js';
import { visibleGpus } from './lib/visible-devices.js';
import { othersAccounting } from './lib/sim-release.js';
import {
  apiPreamble,
  compiled,
  configResolved,
  engineBanner,
  engineReady,
  graphsCaptured,
  graphsDisabled,
  kvCacheSize,
  loadStart,
  logHeader,
  memoryProfile,
  processPrefixes,
  torchOomException,
  V0_ENGINE_FAILED,
  weightsLoaded,
  type LogRecord,
  type ServeView,
} from './lib/startup-wording.js';
import {
  API_SERVER_BIND_FRAMES,
  API_SERVER_CONFIG_FRAMES,
  API_SERVER_STARTUP_FRAMES,
  EXECUTE_MODEL_FRAMES,
  OUTPUT_HANDLER_FRAMES,
  engineProcessTraceback,
  traceback,
} from './lib/tracebacks.js';
import { startupFrames, v0StartupFailure, type StartupStep } from './lib/v0-tracebacks.js';
import { VllmLog, vllmTimestamp, type Level, type Proc } from './lib/vllm-log.js';
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
  /** Physical indexes of the GPUs CUDA_VISIBLE_DEVICES lets it see, in CUDA's order. */
  private readonly visible: number[];
  /** With tensor parallelism, one worker process per rank (vLLM V1's MultiprocExecutor); none at TP 1. */
  private workers: ChildProcess[] = [];

  constructor(
    private readonly settings: SimSettings,
    private readonly profile: SimModelProfile,
    private readonly cfg: ServeConfig,
    private readonly log: VllmLog,
  ) {
    this.visible = visibleGpus(settings.gpuCount, settings.cudaVisibleDevices);
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

  /** The physical GPUs of its ranks: the first tensor-parallel-size of the visible ones (rank r on CUDA device r). */
  private gpuIndexes(): number[] {
    return this.visible.slice(0, this.cfg.serving.tensorParallelSize);
  }

  /** Its pids in the GPU state: its own, and its rank workers'. */
  private ownPids(): number[] {
    return [this.pid, ...this.workers.flatMap((w) => (w.pid === undefined ? [] : [w.pid]))];
  }

  /**
   * With TP > 1, vLLM V1's MultiprocExecutor starts one worker process per rank, each on its own GPU, and
   * nvidia-smi lists each worker on its GPU (the API server and the engine core hold no GPU memory):
   * https://docs.vllm.ai/en/v0.20.0/api/vllm/v1/executor/multiproc_executor/ (`MultiprocExecutor._init_executor`
   * makes a `WorkerProc` per rank of the world size; `WorkerProc` runs a GPU `Worker` on `local_rank`).
   * V0's MultiprocessingDistributedExecutor kept rank 0 in the driver (the server's own process) and started
   * workers for ranks 1 … TP−1 only
   * (https://docs.vllm.ai/en/v0.9.1/api/vllm/executor/mp_distributed_executor.html, `_init_executor`).
   * Here a worker is a small shell that lives as long as this process: it exits when its stdin (a pipe
   * from here) closes, even when this process is SIGKILLed. Its command line names it `VLLM::Worker_TP<r>`,
   * the title vLLM gives its workers.
   */
  private startWorkers(): void {
    const tp = this.cfg.serving.tensorParallelSize;
    if (tp <= 1 || this.workers.length > 0) return;
    for (let rank = this.firstWorkerRank(); rank < tp; rank++) {
      const worker = spawn('/bin/sh', ['-c', 'read _ || true', `VLLM::Worker_TP${rank}`], {
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      worker.on('error', () => undefined);
      worker.stdin?.on('error', () => undefined);
      worker.unref();
      this.workers.push(worker);
    }
  }

  private firstWorkerRank(): number {
    return this.settings.release.engine === 'v0' ? 1 : 0;
  }

  /** The pid nvidia-smi shows on rank r's GPU. */
  private rankPid(rank: number): number {
    const worker = this.workers[rank - this.firstWorkerRank()];
    return rank < this.firstWorkerRank() || worker?.pid === undefined ? this.pid : worker.pid;
  }

  private stopWorkers(): void {
    for (const w of this.workers) {
      w.stdin?.destroy();
      if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
    }
  }

  /** Memory on GPU `index` (physical) used by everything but this process and its workers, MiB. */
  private othersOn(index: number): { mb: number; processes: GpuStateProcess[] } {
    const uuid = simGpuUuid(index);
    const processes = foreignProcesses(this.settings.gpuStatePath, this.ownPids()).filter(
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
        ? this.gpuIndexes().map((i, rank) => ({
            pid: this.rankPid(rank),
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
        this.ownPids(),
        own,
        usedMb > 0 ? utilizationPct : 0,
      );
    } catch (e) {
      this.say(
        'engine',
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

  /** One logger call as the release prints it: its header on every line (VllmLog adds the process prefix). */
  private say(proc: Proc, level: Level, source: string, message: string): void {
    const head = logHeader(this.settings.release, level, source, vllmTimestamp(new Date()));
    this.log.raw(
      proc,
      message.split('\n').map((line) => head + line),
    );
  }

  private emit(records: LogRecord[]): void {
    for (const r of records) this.say(r.proc, r.level, r.source, r.message);
  }

  /** Start-up as the release played (settings.release) logs it: startup-wording.ts has the texts. */
  async start(): Promise<void> {
    const { settings, profile, cfg, log } = this;
    const r = settings.release;
    const s = cfg.serving;
    const total = settings.startupMs;
    const view: ServeView = {
      model: cfg.model,
      servedName: this.servedName,
      architecture: profile.architecture,
      dtype: profile.dtypeBytes === 4 ? 'torch.float32' : 'torch.bfloat16',
      serving: s,
      explicit: cfg.explicit,
    };
    this.emit(apiPreamble(r, view));

    const configFailure = checkServingConfig(profile, s, this.visible.length, settings.allowLongMaxModelLen);
    if (configFailure) {
      log.raw(
        'api',
        traceback(API_SERVER_CONFIG_FRAMES, configFailure.exception, configFailure.lines),
        'stderr',
      );
      this.exit(1);
      return;
    }
    this.emit(configResolved(r, view));

    if (cfg.port !== 0 && !(await this.portIsFree())) {
      log.raw(
        'api',
        traceback(API_SERVER_BIND_FRAMES, 'OSError', '[Errno 98] Address already in use'),
        'stderr',
      );
      this.exit(1);
      return;
    }

    const othersMb = Math.max(0, ...this.gpuIndexes().map((i) => this.othersOn(i).mb));
    const plan = accountedPlan(r, planMemory(profile, s, settings.gpuTotalMb), s, othersMb);
    this.plan = plan;
    this.emit(engineBanner(r, view));

    // init_device: with CUDA_VISIBLE_DEVICES naming no simulated GPU, torch finds none.
    if (this.visible.length === 0) {
      return this.failStartup('init_device', 'RuntimeError', 'No CUDA GPUs are available');
    }
    // init_device (V1 0.9.1 →): the free memory must cover total × utilization on every GPU the engine uses.
    if (othersAccounting(r) === 'startup_check') {
      for (const i of this.gpuIndexes()) {
        const freeMb = settings.gpuTotalMb - this.othersOn(i).mb;
        const message = checkFreeMemory(plan, freeMb, s.gpuMemoryUtilization);
        if (message) return this.failStartup('init_device', 'ValueError', message);
      }
    }
    const contextMb = 530; // CUDA context + NCCL before any tensor
    this.startWorkers();
    this.publish(contextMb, 0);
    if (!(await this.wait(total * 0.1))) return;

    this.emit(loadStart(r, cfg.model));
    const loadStarted = Date.now();
    for (const [rank, i] of this.gpuIndexes().entries()) {
      const oom = checkWeightsLoad(plan, profile, settings.gpuTotalMb - this.othersOn(i).mb, rank);
      if (oom) {
        if (!(await this.wait(total * 0.2))) return;
        return this.failStartup('load_model', torchOomException(r), torchOutOfMemory(oom));
      }
    }
    if (!(await this.wait(total * 0.45))) return;
    this.emit(weightsLoaded(r, plan.weightsMb, (Date.now() - loadStarted) / 1000));
    this.publish(plan.weightsMb + contextMb, 0);

    const profileStart = Date.now();
    const cacheHash = randomBytes(5).toString('hex');
    if (!s.enforceEager) this.emit(compiled(r, cacheHash, null));
    if (!(await this.wait(total * 0.2))) return;
    const profileSeconds = (Date.now() - profileStart) / 1000;
    if (!s.enforceEager) this.emit(compiled(r, cacheHash, profileSeconds));
    this.emit(memoryProfile(r, accountingOf(plan, s.gpuMemoryUtilization, profileSeconds)));

    // V1 refuses before it prints the cache's size, V0 after (it logs its blocks first).
    this.kvTokens = kvCacheTokens(plan);
    const refusal = kvCacheRefusal(r, plan, s);
    if (refusal && r.engine === 'v1') return this.failStartup('kv_cache', 'ValueError', refusal);
    this.emit(kvCacheSize(r, this.kvTokens, plan.kvBytesPerToken, s.maxModelLen));
    if (refusal) return this.failStartup('kv_cache', 'ValueError', refusal);
    for (const [rank, i] of this.gpuIndexes().entries()) {
      const oom = kvAllocationOom(r, plan, profile.layers, settings.gpuTotalMb - this.othersOn(i).mb, rank);
      if (oom) return this.failStartup('kv_alloc', torchOomException(r), torchOutOfMemory(oom));
    }
    this.publish(plan.requestedMb, 0);
    const graphStart = Date.now();
    if (!(await this.wait(total * 0.15))) return;
    if (s.enforceEager) {
      this.emit(graphsDisabled(r));
    } else {
      const graphs = graphsCaptured(r, (Date.now() - graphStart) / 1000, plan.cudaGraphMb);
      if (graphs.bar !== null) log.raw('engine', graphs.bar, 'stderr');
      this.emit(graphs.records);
    }
    this.emit(engineReady(r, (Date.now() - profileStart) / 1000, this.kvTokens));
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

  /** Dies at start-up as the release's engine does, `where` naming the step that raised. */
  private failStartup(where: StartupStep, exception: string, message: string): void {
    const { log, settings } = this;
    if (settings.release.engine === 'v0') {
      const failure = v0StartupFailure(
        settings.release,
        startupFrames('v0', where),
        exception,
        message,
        V0_ENGINE_FAILED,
      );
      if (failure.logged !== null) this.say('engine', 'ERROR', 'engine.py:366', failure.logged);
      for (const printed of failure.printed) log.raw('engine', printed, 'stderr');
      this.exit(1);
      return;
    }
    const frames = startupFrames('v1', where);
    this.say(
      'engine',
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
    this.say(
      'api',
      'INFO',
      'api_server.py:1880',
      `Starting vLLM API server on http://${this.hostShown}:${port}`,
    );
    this.say('api', 'INFO', 'launcher.py:29', 'Available routes are:');
    for (const [route, methods] of [
      ['/openapi.json', 'GET, HEAD'],
      ['/health', 'GET'],
      ['/metrics', 'GET'],
      ['/version', 'GET'],
      ['/v1/models', 'GET'],
      ['/v1/chat/completions', 'POST'],
      ['/v1/completions', 'POST'],
    ] as const) {
      this.say('api', 'INFO', 'launcher.py:37', `Route: ${route}, Methods: ${methods}`);
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
      for (const [rank, i] of this.gpuIndexes().entries()) {
        const others = this.othersOn(i);
        const oom = runtimeOom({
          plan: this.plan,
          serving: this.cfg.serving,
          gpuIndex: rank, // PyTorch names the CUDA device (its ordinal among the visible ones)
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
      this.say(
        'api',
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
    this.say(
      'engine',
      'ERROR',
      'dump_input.py:69',
      `Dumping input data for V1 LLM engine (v${settings.vllmVersion}) with config: model='${cfg.model}', ` +
        `max_seq_len=${cfg.serving.maxModelLen}, tensor_parallel_size=${cfg.serving.tensorParallelSize}, ` +
        `enforce_eager=${cfg.serving.enforceEager ? 'True' : 'False'}, kv_cache_dtype=${cfg.serving.kvCacheDtype}, ` +
        `served_model_name=${this.servedName}, `,
    );
    this.say(
      'engine',
      'ERROR',
      'dump_input.py:76',
      `Dumping scheduler output for model execution: SchedulerOutput(scheduled_new_reqs=[], scheduled_cached_reqs=CachedRequestData(req_ids=[], ` +
        `resumed_from_preemption=[], new_token_ids=[], new_block_ids=[], num_computed_tokens=[]), ` +
        `num_scheduled_tokens={}, total_num_scheduled_tokens=${this.inflightTokens}, scheduled_spec_decode_tokens={}, ` +
        `scheduled_encoder_inputs={}, num_common_prefix_blocks=[0], finished_req_ids=[], free_encoder_input_ids=[], ` +
        'structured_output_request_ids={}, grammar_bitmask=null, kv_connector_metadata=null)',
    );
    this.say(
      'engine',
      'ERROR',
      'core.py:700',
      ['EngineCore encountered a fatal error.', ...traceback(EXECUTE_MODEL_FRAMES, TORCH_OOM, message)].join(
        '\n',
      ),
    );
    log.raw('engine', engineProcessTraceback(EXECUTE_MODEL_FRAMES, TORCH_OOM, message), 'stderr');
    this.say(
      'api',
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
    if (wasReady) this.say('api', 'INFO', 'launcher.py:80', 'Shutting down FastAPI HTTP server.');
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
    this.stopWorkers();
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
  const log = new VllmLog({
    pid: process.pid,
    prefixed: settings.logPrefix ?? processPrefixes(settings.release),
  });
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
