// What vLLM's V0 engine (LLMEngine, the default up to 0.7.x) prints when it fails at start-up, shaped like the
// real thing: from 0.6 `vllm serve` runs the engine in its own process (MQLLMEngine), which logs the
// exception ("ERROR … engine.py:366] ValueError: …", test/fixtures/vllm-startup-reports/v0.6.4.post1-…),
// dies with multiprocessing's report, and the API server raises "Engine process failed to start. See stack
// trace for the root cause."; 0.5.x ran the engine inside the API server (one traceback). V1's frames are in
// tracebacks.ts; startupFrames picks an engine's. Only the shape matters to readers of the log; line
// numbers are illustrative. Pure.
import { releaseAtLeast, type SimRelease } from './sim-release.js';
import {
  INIT_DEVICE_FRAMES,
  KV_CACHE_FRAMES,
  LOAD_MODEL_FRAMES,
  traceback,
  type Frame,
} from './tracebacks.js';

/** LLMEngine.__init__ sizing and allocating the KV cache. */
const INITIALIZE_KV: Frame[] = [
  ['vllm/engine/llm_engine.py', 350, '__init__', 'self._initialize_kv_caches()'],
  [
    'vllm/engine/llm_engine.py',
    500,
    '_initialize_kv_caches',
    'self.model_executor.initialize_cache(num_gpu_blocks, num_cpu_blocks)',
  ],
  [
    'vllm/executor/gpu_executor.py',
    125,
    'initialize_cache',
    'self.driver_worker.initialize_cache(num_gpu_blocks, num_cpu_blocks)',
  ],
];

/** Frames down to worker.raise_if_cache_size_invalid (no blocks, or max_model_len above the blocks). */
export const V0_KV_CHECK_FRAMES: Frame[] = [
  ...INITIALIZE_KV,
  ['vllm/worker/worker.py', 266, 'initialize_cache', 'raise_if_cache_size_invalid(num_gpu_blocks,'],
  ['vllm/worker/worker.py', 493, 'raise_if_cache_size_invalid', 'raise ValueError('],
];

/** Frames down to the KV cache's allocation (the budget left other processes out; the GPU is not free). */
export const V0_KV_ALLOC_FRAMES: Frame[] = [
  ...INITIALIZE_KV,
  ['vllm/worker/worker.py', 270, 'initialize_cache', 'self._init_cache_engine()'],
  ['vllm/worker/worker.py', 276, '_init_cache_engine', 'self.cache_engine = ['],
  ['vllm/worker/worker.py', 277, '<listcomp>', 'CacheEngine(self.cache_config, self.model_config,'],
  ['vllm/worker/cache_engine.py', 62, '__init__', 'self.gpu_cache = self._allocate_kv_cache('],
  ['vllm/worker/cache_engine.py', 81, '_allocate_kv_cache', 'torch.zeros(kv_cache_shape,'],
];

/** Frames down to the weight loader (weights larger than the free memory). */
export const V0_LOAD_MODEL_FRAMES: Frame[] = [
  ['vllm/engine/llm_engine.py', 335, '__init__', 'self.model_executor = executor_class('],
  ['vllm/executor/executor_base.py', 47, '__init__', 'self._init_executor()'],
  ['vllm/executor/gpu_executor.py', 40, '_init_executor', 'self.driver_worker.load_model()'],
  ['vllm/worker/worker.py', 183, 'load_model', 'self.model_runner.load_model()'],
  [
    'vllm/worker/model_runner.py',
    1058,
    'load_model',
    'self.model = get_model(model_config=self.model_config,',
  ],
  ['vllm/model_executor/layers/linear.py', 1027, '__init__', 'weight = Parameter(torch.empty('],
];

/** 0.5.x: the engine built at the API server's start. */
const API_SERVER_05: Frame[] = [
  ['/usr/lib/python3.10/runpy.py', 196, '_run_module_as_main', 'return _run_code(code, main_globals, None,'],
  ['vllm/entrypoints/openai/api_server.py', 216, '<module>', 'engine = AsyncLLMEngine.from_engine_args('],
  ['vllm/engine/async_llm_engine.py', 471, 'from_engine_args', 'engine = cls('],
  ['vllm/engine/async_llm_engine.py', 381, '__init__', 'self.engine = self._init_engine(*args, **kwargs)'],
  ['vllm/engine/async_llm_engine.py', 552, '_init_engine', 'return engine_class(*args, **kwargs)'],
];

/** 0.6 →: the engine process (MQLLMEngine). */
const ENGINE_PROCESS: Frame[] = [
  ['/usr/lib/python3.12/multiprocessing/process.py', 314, '_bootstrap', 'self.run()'],
  ['/usr/lib/python3.12/multiprocessing/process.py', 108, 'run', 'self._target(*self._args, **self._kwargs)'],
  ['vllm/engine/multiprocessing/engine.py', 368, 'run_mp_engine', 'raise e'],
  [
    'vllm/engine/multiprocessing/engine.py',
    357,
    'run_mp_engine',
    'engine = MQLLMEngine.from_engine_args(engine_args=engine_args,',
  ],
  ['vllm/engine/multiprocessing/engine.py', 119, 'from_engine_args', 'return cls(ipc_path=ipc_path,'],
  ['vllm/engine/multiprocessing/engine.py', 71, '__init__', 'self.engine = LLMEngine(*args, **kwargs)'],
];

/** 0.6 →: the API server waiting for the engine process. */
const API_SERVER: Frame[] = [
  ['/usr/local/bin/vllm', 8, '<module>', 'sys.exit(main())'],
  ['vllm/scripts.py', 201, 'main', 'args.dispatch_function(args)'],
  ['vllm/scripts.py', 42, 'serve', 'uvloop.run(run_server(args))'],
  [
    'vllm/entrypoints/openai/api_server.py',
    639,
    'run_server',
    'async with build_async_engine_client(args) as engine_client:',
  ],
  ['/usr/lib/python3.12/contextlib.py', 210, '__aenter__', 'return await anext(self.gen)'],
  [
    'vllm/entrypoints/openai/api_server.py',
    233,
    'build_async_engine_client_from_engine_args',
    'raise RuntimeError(',
  ],
];

export interface V0Failure {
  /** What the engine process logs at ERROR (engine.py:366), one line a header; null: nothing logged. */
  logged: string | null;
  /** Tracebacks Python prints itself, in order (stderr). */
  printed: string[][];
}

/** A V0 start-up failure: `frames` lead from LLMEngine.__init__ to what raised `exception: message`. */
export function v0StartupFailure(
  r: SimRelease,
  frames: Frame[],
  exception: string,
  message: string,
  apiFailure: string,
): V0Failure {
  if (!releaseAtLeast(r, 6)) {
    return { logged: null, printed: [traceback([...API_SERVER_05, ...frames], exception, message)] };
  }
  return {
    logged: [message, ...traceback([...ENGINE_PROCESS.slice(3), ...frames], exception, message)].join('\n'),
    printed: [
      ['Process SpawnProcess-1:', ...traceback([...ENGINE_PROCESS, ...frames], exception, message)],
      traceback(API_SERVER, 'RuntimeError', apiFailure),
    ],
  };
}

/** The start-up step that failed, for the traceback leading to it. */
export type StartupStep = 'init_device' | 'load_model' | 'kv_cache' | 'kv_alloc';

const FRAMES: Record<'v0' | 'v1', Record<StartupStep, Frame[]>> = {
  v0: {
    init_device: V0_KV_ALLOC_FRAMES, // V0 has no start-up check: other processes show when the cache is allocated
    load_model: V0_LOAD_MODEL_FRAMES,
    kv_cache: V0_KV_CHECK_FRAMES,
    kv_alloc: V0_KV_ALLOC_FRAMES,
  },
  v1: {
    init_device: INIT_DEVICE_FRAMES,
    load_model: LOAD_MODEL_FRAMES,
    kv_cache: KV_CACHE_FRAMES,
    kv_alloc: KV_CACHE_FRAMES, // V1 sizes the cache from what is free: its allocation does not fail at start
  },
};

/** The frames from the engine's start down to the step that raised. */
export function startupFrames(engine: 'v0' | 'v1', step: StartupStep): Frame[] {
  return FRAMES[engine][step];
}
