// The demo's GPU service: the simulated vLLM (sim/vllm-sim.ts) under the simulator's supervisor, with
// the aggressive config and background load, so it OOMs, exits and is restarted (Restart=on-failure, as
// a systemd unit for vLLM would be) until the healer's canary promotes a config that fits.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pickFreePort } from '../../src/servers/dev-server.js';
import type { ChildSet } from './children.js';
import { AGGRESSIVE_SERVING } from './demo-plan.js';

export const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
export const SERVED_MODEL = 'llama-3.1-8b';
const TSX = ['--import', 'tsx'];

export interface DemoService {
  configPath: string;
  stateDir: string;
  logPath: string;
  gpuStatePath: string;
  baseUrl: string;
  modelProfile: string;
  supervisorPid: number;
  /** The restart command the worker is given (the supervisor's `restart`, as an argument array). */
  restartCommand: string[];
}

export async function startDemoService(opts: {
  repoRoot: string;
  demoDir: string;
  children: ChildSet;
  baseEnv: Record<string, string | undefined>;
}): Promise<DemoService> {
  const { repoRoot, demoDir } = opts;
  const stateDir = join(demoDir, 'svc');
  const configPath = join(demoDir, 'vllm.yaml');
  const gpuStatePath = join(demoDir, 'gpu-state.json');
  const modelProfile = join(repoRoot, 'sim', 'models', 'llama-3.1-8b.json');
  await mkdir(stateDir, { recursive: true });
  await removeStaleControlFile(stateDir);
  const port = await pickFreePort();
  // Every demo starts from the aggressive config (a promoted one from an earlier run would not OOM).
  await writeFile(
    configPath,
    [
      `model: ${MODEL}`,
      `served-model-name: ${SERVED_MODEL}`,
      'host: 127.0.0.1',
      `port: ${port}`,
      ...Object.entries(AGGRESSIVE_SERVING).map(([k, v]) => `${k}: ${String(v)}`),
      '',
    ].join('\n'),
  );
  const supervisorScript = join(repoRoot, 'sim', 'supervisor.ts');
  const child = await opts.children.start({
    name: 'simulated vLLM (supervisor)',
    file: process.execPath,
    args: [
      ...TSX,
      supervisorScript,
      'run',
      '--state-dir',
      stateDir,
      '--restart-on-exit=on-failure',
      '--restart-delay',
      '2s',
      '--',
      process.execPath,
      ...TSX,
      join(repoRoot, 'sim', 'vllm-sim.ts'),
      '--config',
      configPath,
    ],
    cwd: repoRoot,
    env: {
      ...opts.baseEnv,
      KLR_SIM_GPU_STATE: gpuStatePath,
      SIM_MODEL_PROFILE: modelProfile,
      SIM_STARTUP_MS: '1500',
      SIM_LOAD: '1',
      SIM_STATS_INTERVAL_MS: '0',
    },
    logFile: join(demoDir, 'supervisor.log'),
  });
  const deadline = Date.now() + 30_000;
  while (!existsSync(join(stateDir, 'control.json'))) {
    if (Date.now() > deadline)
      throw new Error(`the simulated service's supervisor did not start; see ${child.logFile}`);
    await sleep(100);
  }
  return {
    configPath,
    stateDir,
    logPath: join(stateDir, 'service.log'),
    gpuStatePath,
    baseUrl: `http://127.0.0.1:${port}`,
    modelProfile,
    supervisorPid: child.pid,
    restartCommand: [
      process.execPath,
      ...TSX,
      supervisorScript,
      'restart',
      '--state-dir',
      stateDir,
      '--timeout',
      '60s',
    ],
  };
}

/** A control file left by a supervisor that died would pass for a ready one: refuse a live one, drop a dead one. */
async function removeStaleControlFile(stateDir: string): Promise<void> {
  const path = join(stateDir, 'control.json');
  let pid: number | undefined;
  try {
    pid = (JSON.parse(await readFile(path, 'utf8')) as { pid?: number }).pid;
  } catch {
    return; // none, or unreadable: the supervisor rewrites it
  }
  if (typeof pid === 'number' && pid > 0) {
    try {
      process.kill(pid, 0);
      throw new Error(
        `a simulated service already runs for ${stateDir} (supervisor pid ${pid}): is another \`npm start\` running? ` +
          'Stop it, or use another KLR_DATA_DIR.',
      );
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  await rm(path, { force: true });
}
