// The demo's GPU host: two simulated vLLM services (sim/vllm-sim.ts), each under its own simulator
// supervisor, on one simulated 8-GPU host (one shared GPU state file, which the stand-in nvidia-smi reads),
// and the services file that tells the worker and the observer about both. "llama" has the aggressive
// config and background load, so it OOMs, exits and is restarted (Restart=on-failure, as a systemd unit
// for vLLM would be) until the healer's canary promotes a config that fits; "qwen" fits and is left alone.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pickFreePort } from '../../src/servers/dev-server.js';
import type { ChildSet } from './children.js';
import { DEMO_GPU_COUNT, DEMO_SERVICES, type DemoServicePlan } from './demo-plan.js';

const TSX = ['--import', 'tsx'];

export interface DemoService {
  plan: DemoServicePlan;
  name: string;
  configPath: string;
  /** The config as the demo wrote it at start. */
  configText: string;
  stateDir: string;
  logPath: string;
  baseUrl: string;
  modelProfile: string;
  supervisorPid: number;
  /** The restart command the worker is given (the supervisor's `restart`, as an argument array). */
  restartCommand: string[];
}

export interface DemoHost {
  services: DemoService[];
  gpuStatePath: string;
  servicesFile: string;
}

/** Where each service's files are: llama keeps the paths of the single-service demo (vllm.yaml, svc/). */
export function demoServicePaths(
  demoDir: string,
  plan: Pick<DemoServicePlan, 'name' | 'legacyIds'>,
): { configPath: string; stateDir: string; supervisorLog: string } {
  return plan.legacyIds
    ? {
        configPath: join(demoDir, 'vllm.yaml'),
        stateDir: join(demoDir, 'svc'),
        supervisorLog: join(demoDir, 'supervisor.log'),
      }
    : {
        configPath: join(demoDir, `${plan.name}.yaml`),
        stateDir: join(demoDir, `svc-${plan.name}`),
        supervisorLog: join(demoDir, `supervisor-${plan.name}.log`),
      };
}

/** The vLLM YAML config of a service. */
export function demoConfigText(plan: DemoServicePlan, port: number): string {
  return [
    `model: ${plan.model}`,
    `served-model-name: ${plan.servedModel}`,
    'host: 127.0.0.1',
    `port: ${port}`,
    ...Object.entries(plan.serving).map(([k, v]) => `${k}: ${String(v)}`),
    '',
  ].join('\n');
}

/** The services file (docs/deployment.md, "Several services on one host") the worker and the observer read. */
export function servicesFileText(
  services: Array<
    Pick<DemoService, 'name' | 'configPath' | 'restartCommand' | 'baseUrl' | 'logPath' | 'modelProfile'> & {
      plan: Pick<DemoServicePlan, 'gpu' | 'legacyIds'>;
    }
  >,
): string {
  const lines = ['# Written by `npm start` (the demo) at each start.', 'services:'];
  for (const s of services) {
    lines.push(
      `  - name: ${s.name}`,
      `    config: ${JSON.stringify(s.configPath)}`,
      `    restart: ${JSON.stringify(s.restartCommand)}`,
      `    url: ${s.baseUrl}`,
      `    log: ${JSON.stringify(s.logPath)}`,
      `    gpus: [${s.plan.gpu}]`,
      `    modelProfile: ${JSON.stringify(s.modelProfile)}`,
      ...(s.plan.legacyIds ? ['    legacyIds: true'] : []),
    );
  }
  return `${lines.join('\n')}\n`;
}

export async function startDemoServices(opts: {
  repoRoot: string;
  demoDir: string;
  children: ChildSet;
  baseEnv: Record<string, string | undefined>;
}): Promise<DemoHost> {
  const { demoDir } = opts;
  const gpuStatePath = join(demoDir, 'gpu-state.json');
  const paths = DEMO_SERVICES.map((plan) => demoServicePaths(demoDir, plan));
  for (const p of paths) {
    await mkdir(p.stateDir, { recursive: true });
    await removeStaleControlFile(p.stateDir);
  }
  // No simulator runs for this folder now: the host starts empty (an earlier release's file had one GPU).
  await rm(gpuStatePath, { force: true });
  await rm(`${gpuStatePath}.lock`, { force: true });
  // One after the other (each simulator read-modify-writes the shared GPU state as it starts): the one that
  // fits first, until it answers /health; then the one that will run out of memory.
  const byName = new Map<string, DemoService>();
  const order = DEMO_SERVICES.map((plan, i) => ({ plan, paths: paths[i]! })).sort(
    (a, b) => Number(a.plan.legacyIds) - Number(b.plan.legacyIds),
  );
  for (const { plan, paths: p } of order) {
    byName.set(
      plan.name,
      await startOne({ ...opts, plan, gpuStatePath, ...p, waitHealthy: !plan.legacyIds }),
    );
  }
  const services = DEMO_SERVICES.map((plan) => byName.get(plan.name)!);
  const servicesFile = join(demoDir, 'services.yaml');
  await writeFile(servicesFile, servicesFileText(services));
  return { services, gpuStatePath, servicesFile };
}

async function startOne(opts: {
  repoRoot: string;
  children: ChildSet;
  baseEnv: Record<string, string | undefined>;
  plan: DemoServicePlan;
  gpuStatePath: string;
  configPath: string;
  stateDir: string;
  supervisorLog: string;
  waitHealthy: boolean;
}): Promise<DemoService> {
  const { repoRoot, plan, configPath, stateDir } = opts;
  const modelProfile = join(repoRoot, 'sim', 'models', plan.profileFile);
  const port = await pickFreePort();
  // Every demo starts from these configs (a promoted one from an earlier run would not OOM).
  const configText = demoConfigText(plan, port);
  await writeFile(configPath, configText);
  const supervisorScript = join(repoRoot, 'sim', 'supervisor.ts');
  const child = await opts.children.start({
    name: `simulated vLLM ${plan.name} (supervisor)`,
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
      KLR_SIM_GPU_STATE: opts.gpuStatePath,
      SIM_GPU_COUNT: String(DEMO_GPU_COUNT),
      CUDA_VISIBLE_DEVICES: String(plan.gpu),
      SIM_MODEL_PROFILE: modelProfile,
      SIM_STARTUP_MS: '1500',
      SIM_LOAD: String(plan.load),
      SIM_STATS_INTERVAL_MS: '0',
    },
    logFile: opts.supervisorLog,
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (!existsSync(join(stateDir, 'control.json'))) {
    if (Date.now() > deadline)
      throw new Error(`the supervisor of the simulated ${plan.name} did not start; see ${child.logFile}`);
    await sleep(100);
  }
  while (opts.waitHealthy && !(await answers(`${baseUrl}/health`))) {
    if (Date.now() > deadline)
      throw new Error(
        `the simulated ${plan.name} did not become healthy; see ${join(stateDir, 'service.log')}`,
      );
    await sleep(200);
  }
  return {
    plan,
    name: plan.name,
    configPath,
    configText,
    stateDir,
    logPath: join(stateDir, 'service.log'),
    baseUrl,
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

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
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
