// The pieces of a real healing stack on loopback for end-to-end tests: the simulated vLLM under the
// simulator's supervisor, and the production worker (src/workers/main.ts) as its own process. Every
// process is started here with execa and stopped by its own pid (or the supervisor's stop command).
import { setTimeout as delay } from 'node:timers/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { type ReadyProcess, startReadyProcess } from './ready-process.js';
import { SIM_ARGS, SUPERVISOR_ARGS, WORKER_ARGS } from './programs.js';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
export const NVIDIA_SMI_STAND_IN = join(REPO_ROOT, 'sim', 'bin', 'nvidia-smi');
export const SIM_MODEL_PROFILE = join(REPO_ROOT, 'sim', 'models', 'llama-3.1-8b.json');

/** The supervisor's commands, as argument arrays (the worker's restart command is one of them). */
export function supervisorCommand(verb: 'restart' | 'stop' | 'status', stateDir: string): string[] {
  return [process.execPath, ...SUPERVISOR_ARGS, verb, '--state-dir', stateDir];
}

export interface SimService {
  supervisor: ResultPromise;
  stateDir: string;
  logPath: string;
  baseUrl: string;
  stop(): Promise<void>;
}

/** Polls `url` until it answers 200, or throws after `timeoutMs`. */
export async function waitHealthy(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
    } catch {
      // Not listening yet: the simulator opens its port only once loaded.
    }
    if (Date.now() > deadline) throw new Error(`${url} not healthy after ${timeoutMs} ms`);
    await delay(100);
  }
}

/** Starts `supervisor.ts run -- node vllm-sim.ts --config CONFIG` and waits for the service's /health. */
export async function startSimService(opts: {
  stateDir: string;
  configPath: string;
  port: number;
  env: Record<string, string>;
}): Promise<SimService> {
  const { stateDir } = opts;
  const supervisor = execa(
    process.execPath,
    [
      ...SUPERVISOR_ARGS,
      'run',
      '--state-dir',
      stateDir,
      '--',
      process.execPath,
      ...SIM_ARGS,
      '--config',
      opts.configPath,
    ],
    { cwd: REPO_ROOT, env: opts.env, stdout: 'ignore', stderr: 'inherit', reject: false },
  );
  let exited = false;
  void supervisor.then(() => {
    exited = true;
  });
  const baseUrl = `http://127.0.0.1:${opts.port}`;
  const deadline = Date.now() + 30_000;
  while (!existsSync(join(stateDir, 'control.json'))) {
    if (exited) throw new Error('the supervisor exited before it was ready');
    if (Date.now() > deadline) throw new Error('the supervisor did not write control.json in 30 s');
    await delay(50);
  }
  await waitHealthy(`${baseUrl}/health`);
  return {
    supervisor,
    stateDir,
    logPath: join(stateDir, 'service.log'),
    baseUrl,
    async stop() {
      if (exited) return;
      const [file, ...args] = supervisorCommand('stop', stateDir) as [string, ...string[]];
      await execa(file, args, { cwd: REPO_ROOT, reject: false, timeout: 40_000 });
      const stopped = await Promise.race([supervisor.then(() => true), delay(15_000, false, { ref: false })]);
      if (!stopped && supervisor.pid !== undefined) {
        supervisor.kill('SIGKILL');
        await supervisor;
      }
    },
  };
}

export type RealWorker = ReadyProcess;

/**
 * Starts the production worker (WORKER_ARGS); resolves once it logs it started.
 * Its metrics servers are off unless `env` sets KLR_METRICS_ADDR / KLR_SDK_METRICS_ADDR (test files
 * run side by side: the default ports would clash).
 */
export function startRealWorker(env: Record<string, string>): Promise<RealWorker> {
  return startReadyProcess(WORKER_ARGS, {
    cwd: REPO_ROOT,
    env: { KLR_METRICS_ADDR: 'off', KLR_SDK_METRICS_ADDR: 'off', ...env },
    ready: 'host worker started',
    name: 'worker',
  });
}
