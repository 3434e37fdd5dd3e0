// Python tracebacks shaped like the ones vLLM 0.10 (V1 engine, single GPU, uniproc executor) prints for
// the failures the simulator reproduces. Only the shape matters to readers of the log: the frames lead to
// the function that raised and the last line is "ExceptionType: message".

const SITE = '/usr/local/lib/python3.12/dist-packages';

export type Frame = [file: string, line: number, fn: string, code: string];

const frame = ([file, line, fn, code]: Frame): string[] => [
  `  File "${file.startsWith('/') ? file : `${SITE}/${file}`}", line ${line}, in ${fn}`,
  `    ${code}`,
];

const ENGINE_INIT: Frame[] = [
  ['vllm/v1/engine/core.py', 691, 'run_engine_core', 'engine_core = EngineCoreProc(*args, **kwargs)'],
  ['vllm/v1/engine/core.py', 492, '__init__', 'super().__init__(vllm_config, executor_class, log_stats,'],
];

const EXECUTOR_RPC = (method: string): Frame[] => [
  ['vllm/v1/engine/core.py', 80, '__init__', 'self.model_executor = executor_class(vllm_config)'],
  ['vllm/executor/executor_base.py', 54, '__init__', 'self._init_executor()'],
  [
    'vllm/executor/uniproc_executor.py',
    method === 'init_device' ? 48 : 49,
    '_init_executor',
    `self.collective_rpc("${method}")`,
  ],
  [
    'vllm/executor/uniproc_executor.py',
    58,
    'collective_rpc',
    'answer = run_method(self.driver_worker, method, args, kwargs)',
  ],
  ['vllm/utils/__init__.py', 3007, 'run_method', 'return func(*args, **kwargs)'],
];

/** Frames down to gpu_worker.init_device (free memory below the requested budget). */
export const INIT_DEVICE_FRAMES: Frame[] = [
  ...ENGINE_INIT,
  ...EXECUTOR_RPC('init_device'),
  ['vllm/worker/worker_base.py', 603, 'init_device', 'self.worker.init_device()  # type: ignore'],
  ['vllm/v1/worker/gpu_worker.py', 174, 'init_device', 'raise ValueError('],
];

/** Frames down to the weight loader (weights larger than the free memory). */
export const LOAD_MODEL_FRAMES: Frame[] = [
  ...ENGINE_INIT,
  ...EXECUTOR_RPC('load_model'),
  [
    'vllm/v1/worker/gpu_worker.py',
    213,
    'load_model',
    'self.model_runner.load_model(eep_scale_up=eep_scale_up)',
  ],
  ['vllm/v1/worker/gpu_model_runner.py', 1976, 'load_model', 'self.model = model_loader.load_model('],
  [
    'vllm/model_executor/model_loader/base_loader.py',
    44,
    'load_model',
    'model = initialize_model(vllm_config=vllm_config,',
  ],
  ['vllm/model_executor/layers/linear.py', 1189, '__init__', 'weight = Parameter(torch.empty('],
  ['torch/utils/_device.py', 104, '__torch_function__', 'return func(*args, **kwargs)'],
];

/** Frames down to check_enough_kv_cache_memory (no room, or max_model_len too long for the cache). */
export const KV_CACHE_FRAMES: Frame[] = [
  ...ENGINE_INIT,
  ['vllm/v1/engine/core.py', 91, '__init__', 'self._initialize_kv_caches(vllm_config)'],
  ['vllm/v1/engine/core.py', 183, '_initialize_kv_caches', 'kv_cache_configs = ['],
  ['vllm/v1/engine/core.py', 184, '<listcomp>', 'get_kv_cache_config(vllm_config, kv_cache_spec_one_worker,'],
  [
    'vllm/v1/core/kv_cache_utils.py',
    1078,
    'get_kv_cache_config',
    'check_enough_kv_cache_memory(vllm_config, kv_cache_spec, available_memory)',
  ],
  ['vllm/v1/core/kv_cache_utils.py', 688, 'check_enough_kv_cache_memory', 'raise ValueError('],
];

/** Frames of the busy loop down to the sampler's float32 logits (the burst's transient allocation). */
export const EXECUTE_MODEL_FRAMES: Frame[] = [
  ['vllm/v1/engine/core.py', 702, 'run_engine_core', 'engine_core.run_busy_loop()'],
  ['vllm/v1/engine/core.py', 729, 'run_busy_loop', 'self._process_engine_step()'],
  ['vllm/v1/engine/core.py', 754, '_process_engine_step', 'outputs, model_executed = self.step_fn()'],
  ['vllm/v1/engine/core.py', 284, 'step', 'model_output = self.execute_model_with_error_logging('],
  ['vllm/v1/engine/core.py', 270, 'execute_model_with_error_logging', 'raise err'],
  ['vllm/v1/engine/core.py', 261, 'execute_model_with_error_logging', 'return model_fn(scheduler_output)'],
  ['vllm/v1/executor/abstract.py', 87, 'execute_model', 'output = self.collective_rpc("execute_model",'],
  [
    'vllm/executor/uniproc_executor.py',
    58,
    'collective_rpc',
    'answer = run_method(self.driver_worker, method, args, kwargs)',
  ],
  ['vllm/utils/__init__.py', 3007, 'run_method', 'return func(*args, **kwargs)'],
  ['torch/utils/_contextlib.py', 116, 'decorate_context', 'return func(*args, **kwargs)'],
  [
    'vllm/v1/worker/gpu_worker.py',
    362,
    'execute_model',
    'output = self.model_runner.execute_model(scheduler_output,',
  ],
  ['torch/utils/_contextlib.py', 116, 'decorate_context', 'return func(*args, **kwargs)'],
  ['vllm/v1/worker/gpu_model_runner.py', 1633, 'execute_model', 'sampler_output = self.sampler('],
  ['torch/nn/modules/module.py', 1773, '_wrapped_call_impl', 'return self._call_impl(*args, **kwargs)'],
  ['torch/nn/modules/module.py', 1784, '_call_impl', 'return forward_call(*args, **kwargs)'],
  ['vllm/v1/sample/sampler.py', 70, 'forward', 'logits = logits.to(torch.float32)'],
];

export const OUTPUT_HANDLER_FRAMES: Frame[] = [
  ['vllm/v1/engine/async_llm.py', 375, 'output_handler', 'outputs = await engine_core.get_output_async()'],
  [
    'vllm/v1/engine/core_client.py',
    751,
    'get_output_async',
    'raise self._format_exception(outputs) from None',
  ],
];

/** The API server's own frames when the engine core did not come up. */
export const API_SERVER_STARTUP_FRAMES: Frame[] = [
  ['/usr/local/bin/vllm', 10, '<module>', 'sys.exit(main())'],
  ['vllm/entrypoints/cli/main.py', 54, 'main', 'args.dispatch_function(args)'],
  ['vllm/entrypoints/cli/serve.py', 50, 'cmd', 'uvloop.run(run_server(args))'],
  ['uvloop/__init__.py', 109, 'run', 'return __asyncio.run('],
  ['/usr/lib/python3.12/asyncio/runners.py', 194, 'run', 'return runner.run(main)'],
  [
    'vllm/entrypoints/openai/api_server.py',
    1850,
    'run_server',
    'await run_server_worker(listen_address, sock, args, **uvicorn_kwargs)',
  ],
  [
    'vllm/entrypoints/openai/api_server.py',
    1870,
    'run_server_worker',
    'async with build_async_engine_client(',
  ],
  [
    'vllm/entrypoints/openai/api_server.py',
    178,
    'build_async_engine_client',
    'async with build_async_engine_client_from_engine_args(',
  ],
  [
    'vllm/entrypoints/openai/api_server.py',
    220,
    'build_async_engine_client_from_engine_args',
    'async_llm = AsyncLLM.from_vllm_config(',
  ],
  [
    'vllm/v1/engine/async_llm.py',
    128,
    '__init__',
    'self.engine_core = EngineCoreClient.make_async_mp_client(',
  ],
  ['vllm/v1/engine/core_client.py', 102, 'make_async_mp_client', 'return AsyncMPClient(*client_args)'],
  ['vllm/v1/engine/core_client.py', 446, '__init__', 'with launch_core_engines(vllm_config, executor_class,'],
  ['/usr/lib/python3.12/contextlib.py', 144, '__exit__', 'next(self.gen)'],
  ['vllm/v1/engine/utils.py', 729, 'launch_core_engines', 'wait_for_engine_startup('],
  [
    'vllm/v1/engine/utils.py',
    782,
    'wait_for_engine_startup',
    'raise RuntimeError("Engine core initialization failed. "',
  ],
];

/** The API server's frames when its config is rejected (before any engine). */
export const API_SERVER_CONFIG_FRAMES: Frame[] = [
  ['/usr/local/bin/vllm', 10, '<module>', 'sys.exit(main())'],
  ['vllm/entrypoints/cli/main.py', 54, 'main', 'args.dispatch_function(args)'],
  ['vllm/entrypoints/cli/serve.py', 50, 'cmd', 'uvloop.run(run_server(args))'],
  [
    'vllm/entrypoints/openai/api_server.py',
    1870,
    'run_server_worker',
    'async with build_async_engine_client(',
  ],
  [
    'vllm/entrypoints/openai/api_server.py',
    205,
    'build_async_engine_client_from_engine_args',
    'vllm_config = engine_args.create_engine_config(usage_context=usage_context)',
  ],
  ['vllm/engine/arg_utils.py', 1150, 'create_engine_config', 'model_config = self.create_model_config()'],
];

export const API_SERVER_BIND_FRAMES: Frame[] = [
  ['/usr/local/bin/vllm', 10, '<module>', 'sys.exit(main())'],
  ['vllm/entrypoints/cli/main.py', 54, 'main', 'args.dispatch_function(args)'],
  ['vllm/entrypoints/cli/serve.py', 50, 'cmd', 'uvloop.run(run_server(args))'],
  ['vllm/entrypoints/openai/api_server.py', 1845, 'run_server', 'listen_address, sock = setup_server(args)'],
  ['vllm/entrypoints/openai/api_server.py', 1810, 'setup_server', 'sock = create_server_socket(sock_addr)'],
  ['vllm/entrypoints/openai/api_server.py', 1780, 'create_server_socket', 'sock.bind(addr)'],
];

const MP_BOOTSTRAP: Frame[] = [
  ['/usr/lib/python3.12/multiprocessing/process.py', 314, '_bootstrap', 'self.run()'],
  ['/usr/lib/python3.12/multiprocessing/process.py', 108, 'run', 'self._target(*self._args, **self._kwargs)'],
];

/** "Traceback (most recent call last):", the frames, then "Type: message" (message may span lines). */
export function traceback(frames: Frame[], exception: string, message: string | string[]): string[] {
  const msg = typeof message === 'string' ? [message] : message;
  const [first = '', ...rest] = msg;
  return ['Traceback (most recent call last):', ...frames.flatMap(frame), `${exception}: ${first}`, ...rest];
}

/** multiprocessing's report of the engine core process dying with the exception. */
export function engineProcessTraceback(frames: Frame[], exception: string, message: string): string[] {
  // run_engine_core re-raises: Python shows its "raise e" line, then the original frames.
  const reraise: Frame = ['vllm/v1/engine/core.py', 704, 'run_engine_core', 'raise e'];
  return ['Process EngineCore_0:', ...traceback([...MP_BOOTSTRAP, reraise, ...frames], exception, message)];
}
