// runCanary and restoreService against the real simulated vLLM under the real supervisor: real processes
// on loopback ports, real config files in temp dirs, the nvidia-smi stand-in for VRAM, and Temporal's
// MockActivityEnvironment for heartbeats and cancellation. Every process started here is stopped by pid.
//
//   node --import tsx --test test/activities/canary.test.ts
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { measureVramOnce } from '../../src/activities/measure-vram.js';
import { RESTORE_FAILED } from '../../src/domain/failure-types.js';
import { CANARY_HOST_FAILED, createRunCanary } from '../../src/activities/run-canary.js';
import { RESTORE_INCOMPLETE, createRestoreService } from '../../src/activities/restore-service.js';
import { type ServiceSettings, loadServiceSettings } from '../../src/service/service-settings.js';
import { vllmService } from '../../src/service/vllm-service.js';
import { SettingsError } from '../../src/config/settings.js';
import {
  ConfigFileError,
  atomicWriteFile,
  backupConfig,
  recordPromotion,
  rollbackToPrevious,
} from '../../src/service/config-file.js';
import { LogWatcher, isGpuMemoryFailure, watchLog } from '../../src/service/log-watch.js';
import { applyChanges, readServingConfig } from '../../src/service/vllm-config.js';
import type { CanaryInput, CandidateConfig } from '../../src/activities/types.js';
import { assertGroupGone, killQuietly, pidsFrom } from '../support/process-group.js';
import { SIM_ARGS, SUPERVISOR_ARGS } from '../support/programs.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NVIDIA_SMI = join(ROOT, 'sim', 'bin', 'nvidia-smi');
const STARTUP_MS = 500;
/** A broken simulator or activity must fail a test, not hang the run. */
const LIMIT = { timeout: 90_000 };

// ------------------------------------------------------------------ processes and files

const supervisors = new Set<number>();
const dirs: string[] = [];

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Stop a supervisor (which stops its service) by pid; SIGKILL both if they linger. */
async function stopSupervisor(pid: number, stateDir: string): Promise<number[]> {
  const servicePidFile = join(stateDir, 'service.pid');
  const servicePid = existsSync(servicePidFile) ? Number(readFileSync(servicePidFile, 'utf8').trim()) : 0;
  if (isAlive(pid)) process.kill(pid, 'SIGTERM');
  const left: number[] = [];
  for (const p of [pid, servicePid].filter((x) => x > 0)) {
    const gone = await waitFor(`pid ${p} to exit`, () => !isAlive(p), 15_000).catch(() => false);
    if (!gone) {
      left.push(p);
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // raced with its exit
      }
    }
  }
  supervisors.delete(pid);
  return left;
}

const running: { pid: number; stateDir: string }[] = [];

afterEach(async () => {
  const left: number[] = [];
  for (const s of running.splice(0)) left.push(...(await stopSupervisor(s.pid, s.stateDir)));
  assert.deepEqual(left, [], 'processes that did not stop on SIGTERM');
});

after(() => {
  for (const pid of supervisors) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kloros-canary-'));
  dirs.push(dir);
  return dir;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

async function healthStatus(baseUrl: string): Promise<number | string> {
  try {
    return (await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2000) })).status;
  } catch (e) {
    return (e as Error & { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
  }
}

const configText = (port: number, utilization: number) =>
  [
    '# vLLM config of the simulated service: the canary must keep these comments',
    'model: meta-llama/Llama-3.1-8B-Instruct',
    'served-model-name: sim-llama # what clients ask for',
    'host: 127.0.0.1',
    `port: ${port}`,
    '',
    '# the memory knob the healer tunes',
    `gpu-memory-utilization: ${utilization} # tuned by hand`,
    'max-model-len: 8192',
    '',
  ].join('\n');

interface SimService {
  dir: string;
  port: number;
  baseUrl: string;
  stateDir: string;
  gpuState: string;
  original: string;
  settings: ServiceSettings;
  supervisorPid: number;
  status(): Promise<{ running: boolean; pid: number | null; restarts: number }>;
}

/** The simulated vLLM under the supervisor, healthy, with a 0.98 config (it OOMs at its first request). */
async function startService(opts: { utilization?: number; startupMs?: number } = {}): Promise<SimService> {
  const dir = tempDir();
  const port = await freePort();
  const stateDir = join(dir, 'svc');
  const gpuState = join(dir, 'gpu-state.json');
  const configPath = join(dir, 'vllm.yaml');
  const original = configText(port, opts.utilization ?? 0.98);
  writeFileSync(configPath, original);
  chmodSync(configPath, 0o640);
  const child = spawn(
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
      configPath,
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        SIM_STARTUP_MS: String(opts.startupMs ?? STARTUP_MS),
        SIM_STATS_INTERVAL_MS: '0',
        KLR_SIM_GPU_STATE: gpuState,
      },
      stdio: 'ignore',
    },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the supervisor');
  supervisors.add(pid);
  running.push({ pid, stateDir });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitFor('the simulated service to be healthy', async () => (await healthStatus(baseUrl)) === 200);
  const cli = [process.execPath, ...SUPERVISOR_ARGS] as const;
  const settings: ServiceSettings = {
    configPath,
    restartCommand: [...cli, 'restart', '--state-dir', stateDir, '--timeout', '30s'],
    restartTimeoutMs: 30_000,
    baseUrl,
    logPath: join(stateDir, 'service.log'),
    model: null,
    backupDir: join(dir, 'backups'),
  };
  const status = async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, [...SUPERVISOR_ARGS, 'status', '--state-dir', stateDir, '--json'], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      p.stdout.on('data', (c: Buffer) => (text += c.toString('utf8')));
      p.once('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`status exited ${code}`))));
    });
    return JSON.parse(out) as { running: boolean; pid: number | null; restarts: number };
  };
  return { dir, port, baseUrl, stateDir, gpuState, original, settings, supervisorPid: pid, status };
}

/** The nvidia-smi stand-in reading this service's GPU state file. */
function measureVramOf(svc: SimService) {
  return async () => {
    process.env.KLR_SIM_GPU_STATE = svc.gpuState;
    return measureVramOnce({ nvidiaSmi: NVIDIA_SMI });
  };
}

const candidate = (utilization: number): CandidateConfig => ({
  id: `gpu_memory_utilization=${utilization}`,
  changes: { 'gpu-memory-utilization': utilization },
  predictedVramMb: 0,
  headroomMb: 0,
  fits: true,
  predictedDowntimeMs: 2000,
  givesUp: 'some KV cache',
  why: 'test',
});

const canaryInput = (leaseId: string, c: CandidateConfig, over: Partial<CanaryInput> = {}): CanaryInput => ({
  host: 'gpu-1',
  kind: 'vllm_oom',
  leaseId,
  candidate: c,
  healthDeadlineMs: 30_000,
  soakMs: 1_500,
  ...over,
});

const unused = () => Promise.reject(new Error('VRAM is not measured in this test'));

/** An activity environment that records its heartbeats; `run` keeps the activity's types. */
function activityEnv(attempt = 1) {
  const env = new MockActivityEnvironment(
    { attempt, heartbeatTimeoutMs: 30_000 },
    { logger: new DefaultLogger('ERROR') },
  );
  const beats: { at: number; phase: string | null; [k: string]: unknown }[] = [];
  env.on('heartbeat', (d: { phase: string | null }) => beats.push({ at: performance.now(), ...d }));
  const run = <A, R>(fn: (a: A) => Promise<R>, arg: A): Promise<R> =>
    env.run<[A], R, (a: A) => Promise<R>>(fn, arg);
  return { env, beats, run };
}

const phasesOf = (beats: { phase: string | null }[]) =>
  beats.map((b) => b.phase).filter((p, i, all) => p !== null && p !== all[i - 1]);

// ------------------------------------------------------------------ the canary on the simulator

test(
  'a fitting candidate passes: downtime measured to the ms, candidate promoted in place, .previous kept, mode kept',
  LIMIT,
  async (t) => {
    const svc = await startService();
    const before = await svc.status();
    const runCanary = createRunCanary({
      service: vllmService(svc.settings, { measureVram: measureVramOf(svc) }),
    });
    const { beats, run } = activityEnv();
    const started = performance.now();
    const result = await run(runCanary, canaryInput('lease-pass', candidate(0.9)));
    const wallMs = Math.round(performance.now() - started);

    assert.equal(result.outcome, 'passed', result.reason);
    assert.ok(result.downtimeMs !== null && Number.isInteger(result.downtimeMs), 'whole milliseconds');
    assert.ok(result.downtimeMs > STARTUP_MS, `downtime ${result.downtimeMs} ms > SIM_STARTUP_MS`);
    assert.ok(result.downtimeMs < 30_000);
    // No traffic on the live service yet: the probe takes the default size, and says so.
    assert.match(
      result.reason,
      /^Healthy \d+ ms after the restart, probe: 512-token prompt, 128 tokens out in \d+ ms \(default prompt: fewer than 10 requests in the service's \/metrics; default output\), and \d+ s of soak showed no GPU memory failure/,
    );

    // The candidate is the config on disk now, every other byte (comments too) as it was.
    const onDisk = readFileSync(svc.settings.configPath, 'utf8');
    assert.equal(onDisk, applyChanges(svc.original, { 'gpu-memory-utilization': 0.9 }));
    assert.equal(readServingConfig(svc.settings.configPath).serving.gpuMemoryUtilization, 0.9);
    assert.match(onDisk, /^# vLLM config of the simulated service: the canary must keep these comments$/m);
    assert.match(onDisk, /^gpu-memory-utilization: 0\.9 # tuned by hand$/m);
    assert.equal(statSync(svc.settings.configPath).mode & 0o777, 0o640, 'file mode kept');
    const previous = join(svc.settings.backupDir, 'vllm.yaml.previous');
    assert.equal(readFileSync(previous, 'utf8'), svc.original, '.previous holds the replaced config');
    assert.equal(
      readFileSync(join(svc.settings.backupDir, 'vllm.yaml.before-lease-pass'), 'utf8'),
      svc.original,
    );
    assert.deepEqual(
      readdirSync(svc.dir).filter((n) => n.includes('.tmp-')),
      [],
      'no temp file left next to the config',
    );

    // The service really restarted (new process) and runs the candidate: it answers a real request.
    const afterStatus = await svc.status();
    assert.equal(afterStatus.restarts, before.restarts + 1);
    assert.notEqual(afterStatus.pid, before.pid);
    const res = await fetch(`${svc.baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sim-llama', prompt: 'hello', max_tokens: 2 }),
    });
    assert.equal(res.status, 200, 'the 0.9 candidate serves where 0.98 OOMed');

    // VRAM: the peak of the service's GPU, as the nvidia-smi stand-in reads the state file.
    const state = JSON.parse(readFileSync(svc.gpuState, 'utf8')) as { gpus: { usedMb: number }[] };
    assert.equal(result.measuredVramMb, state.gpus[0]?.usedMb);
    assert.ok((result.measuredVramMb ?? 0) > 70_000 && (result.measuredVramMb ?? 0) < 75_000);
    // What vLLM printed when the candidate started: the prediction's check (the last start in the log).
    const printed = [
      ...readFileSync(svc.settings.logPath ?? '', 'utf8').matchAll(
        /Available KV cache memory: ([\d.]+) GiB/g,
      ),
    ].map((m) => Number(m[1]));
    assert.ok(printed.length >= 2, "the first start and the candidate's");
    assert.deepEqual(result.measured, {
      vllmVersion: '0.10.1.1',
      kvCacheMb: Math.round((printed.at(-1) ?? 0) * 1024),
      kvTokens: result.measured?.kvTokens,
      weightsMb: result.measured?.weightsMb,
    });
    assert.ok((result.measured?.kvTokens ?? 0) > 0 && (result.measured?.weightsMb ?? 0) > 0);

    // Heartbeats: every phase, in order, never more than ~2 s apart.
    assert.deepEqual(phasesOf(beats), ['backup', 'apply', 'restart', 'health', 'probe', 'soak', 'promote']);
    const gaps = beats.slice(1).map((b, i) => b.at - (beats[i]?.at ?? b.at));
    assert.ok(Math.max(...gaps) < 2_000, `heartbeat gaps ${gaps.map(Math.round).join(',')}`);
    const restartBeat = beats.find((b) => b.phase === 'probe');
    const restartCommandMs = Number(restartBeat?.restartCommandMs);
    const entered = beats
      .filter((b, i) => b.phase !== beats[i - 1]?.phase)
      .map((b) => `${b.phase} @${String(b.elapsedMs)}`)
      .join(', ');
    t.diagnostic(`phases entered (ms into the activity): ${entered}`);
    t.diagnostic(
      `wall ${wallMs} ms: downtime (restart start → healthy) ${result.downtimeMs} ms, of which the restart command ${restartCommandMs} ms; soak 1500 ms; overhead ${wallMs - result.downtimeMs - 1500} ms`,
    );
  },
);

test(
  'a candidate that cannot start fails fast with the cause from the log; restore brings the old config back; restore twice is idempotent',
  LIMIT,
  async () => {
    const svc = await startService();
    const runCanary = createRunCanary({
      service: vllmService(svc.settings, { measureVram: measureVramOf(svc) }),
    });
    const restoreService = createRestoreService({
      service: vllmService(svc.settings, { measureVram: measureVramOf(svc) }),
    });
    const started = performance.now();
    const result = await activityEnv().run(
      runCanary,
      canaryInput('lease-fail', candidate(0.15), { healthDeadlineMs: 60_000 }),
    );
    const tookMs = performance.now() - started;
    assert.equal(result.outcome, 'failed');
    assert.equal(result.downtimeMs, null, 'never healthy: no downtime figure');
    assert.match(
      result.reason,
      /^The service failed to start \(not healthy \d+ ms after the restart\); its log says: .*ValueError: No available memory for the cache blocks/,
    );
    assert.ok(tookMs < 15_000, `stopped waiting once the log showed the failure (${Math.round(tookMs)} ms)`);
    assert.match(readFileSync(svc.settings.configPath, 'utf8'), /gpu-memory-utilization: 0\.15/);
    assert.ok(!existsSync(join(svc.settings.backupDir, 'vllm.yaml.previous')), 'nothing promoted');
    assert.notEqual(await healthStatus(svc.baseUrl), 200);

    const input = { host: 'gpu-1', kind: 'vllm_oom', leaseId: 'lease-fail', reason: result.reason };
    const first = activityEnv();
    const restored = await first.run(restoreService, input);
    assert.equal(
      readFileSync(svc.settings.configPath, 'utf8'),
      svc.original,
      'old config back, byte for byte',
    );
    assert.equal(statSync(svc.settings.configPath).mode & 0o777, 0o640);
    assert.equal(await healthStatus(svc.baseUrl), 200);
    assert.ok(restored.downtimeMs > STARTUP_MS, `restore downtime ${restored.downtimeMs} ms`);
    assert.deepEqual(phasesOf(first.beats), ['restore', 'restart', 'health']);
    const restarts = (await svc.status()).restarts;

    // Again (a retry after a lost result): same answer, no second restart.
    const again = await activityEnv(2).run(restoreService, input);
    assert.deepEqual(again, restored);
    assert.equal((await svc.status()).restarts, restarts, 'no restart the second time');
    assert.equal(readFileSync(svc.settings.configPath, 'utf8'), svc.original);
  },
);

test(
  'cancellation in the middle of the health wait stops the canary promptly; the restore then works',
  LIMIT,
  async () => {
    const svc = await startService();
    // A service that never gets healthy and leaves no memory error in the log (no log watched): only the
    // deadline (60 s) would end the wait.
    const blind = createRunCanary({
      service: vllmService({ ...svc.settings, logPath: null }, { measureVram: measureVramOf(svc) }),
    });
    const { env, beats, run } = activityEnv();
    const started = performance.now();
    const canary = run(blind, canaryInput('lease-cancel', candidate(0.15), { healthDeadlineMs: 60_000 }));
    canary.catch(() => undefined);
    await waitFor('the health phase', () => beats.some((b) => b.phase === 'health'));
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(beats.at(-1)?.phase, 'health', 'still waiting for health');
    const cancelledAt = performance.now();
    env.cancel();
    await assert.rejects(canary, (err: unknown) => {
      assert.ok(err instanceof CancelledFailure, `a CancelledFailure, got ${String(err)}`);
      return true;
    });
    const stopMs = performance.now() - cancelledAt;
    assert.ok(stopMs < 500, `stopped ${Math.round(stopMs)} ms after the cancellation`);
    assert.ok(performance.now() - started < 30_000);
    assert.match(readFileSync(svc.settings.configPath, 'utf8'), /gpu-memory-utilization: 0\.15/);

    const restored = await activityEnv().run(
      createRestoreService({ service: vllmService(svc.settings, { measureVram: measureVramOf(svc) }) }),
      {
        host: 'gpu-1',
        kind: 'vllm_oom',
        leaseId: 'lease-cancel',
        reason: 'cancelled',
      },
    );
    assert.ok(restored.downtimeMs > STARTUP_MS);
    assert.equal(readFileSync(svc.settings.configPath, 'utf8'), svc.original);
    assert.equal(await healthStatus(svc.baseUrl), 200);
  },
);

test(
  'a candidate the service accepts but that OOMs on the probe fails with the CUDA OOM line',
  LIMIT,
  async () => {
    const svc = await startService({ utilization: 0.9 });
    const runCanary = createRunCanary({
      service: vllmService(svc.settings, { measureVram: measureVramOf(svc) }),
    });
    const result = await activityEnv().run(runCanary, canaryInput('lease-oom', candidate(0.99)));
    assert.equal(result.outcome, 'failed');
    assert.ok(result.downtimeMs !== null && result.downtimeMs > STARTUP_MS, 'it was healthy: downtime known');
    assert.match(result.reason, /^Probe POST .* answered HTTP 500/);
    assert.match(result.reason, /CUDA out of memory|OutOfMemoryError|EngineDeadError/);
    assert.ok(!existsSync(join(svc.settings.backupDir, 'vllm.yaml.previous')), 'nothing promoted');
  },
);

test(
  'a candidate that cripples the service (max-model-len below its own traffic) fails on the probe; the restore brings the old config back',
  LIMIT,
  async () => {
    const svc = await startService({ utilization: 0.9 });
    // The live service's own traffic: 15 requests of 700 prompt tokens and 48 out. The p90 is read from
    // vLLM's buckets as Prometheus does, linear within (500, 1000] and (20, 50]: 950 and 47 tokens.
    const words = Array.from({ length: 699 }, (_, i) => ['the', 'of', 'and', 'to'][i % 4]).join(' ');
    for (let i = 0; i < 15; i++) {
      const res = await fetch(`${svc.baseUrl}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'sim-llama', prompt: words, max_tokens: 48, ignore_eos: true }),
      });
      assert.equal(res.status, 200, await res.text());
    }
    // What an estimatedMaxModelLen of 512 would have proposed without floors: the service starts, /health is
    // 200, a one-token ping passes; a request of the service's own size does not.
    const crippling: CandidateConfig = {
      ...candidate(0.9),
      id: 'max-model-len=512',
      changes: { 'max-model-len': 512 },
    };
    const runCanary = createRunCanary({
      service: vllmService(svc.settings, { measureVram: measureVramOf(svc) }),
    });
    const { beats, run } = activityEnv();
    const result = await run(runCanary, canaryInput('lease-crippled', crippling));
    assert.equal(result.outcome, 'failed', result.reason);
    assert.ok(result.downtimeMs !== null && result.downtimeMs > STARTUP_MS, 'it was healthy: downtime known');
    assert.match(
      result.reason,
      /^Probe POST http:\/\/127\.0\.0\.1:\d+\/v1\/completions answered HTTP 400: the candidate's context \(max-model-len 512\) is too short for a 950-token prompt and 47 tokens out, a request of the service's own size: This model's maximum context length is 512 tokens\./,
    );
    assert.match(
      result.reason,
      /; probe size: prompt p90 of the service's last 15 requests; output p90 of 15 requests\.$/,
    );
    const beat = beats.find((b) => b.probePromptTokens !== undefined);
    assert.ok(beat && beat.probePromptTokens === 950 && beat.probeOutputTokens === 47, JSON.stringify(beat));
    assert.ok(!existsSync(join(svc.settings.backupDir, 'vllm.yaml.previous')), 'nothing promoted');
    assert.match(readFileSync(svc.settings.configPath, 'utf8'), /^max-model-len: 512$/m);

    // What the workflow does next: restore. The old config is back and serves the same request again.
    const restored = await activityEnv().run(
      createRestoreService({ service: vllmService(svc.settings, { measureVram: measureVramOf(svc) }) }),
      {
        host: 'gpu-1',
        kind: 'vllm_oom',
        leaseId: 'lease-crippled',
        reason: result.reason,
      },
    );
    assert.ok(restored.downtimeMs > STARTUP_MS);
    assert.equal(readFileSync(svc.settings.configPath, 'utf8'), svc.original);
    const again = await fetch(`${svc.baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sim-llama', prompt: words, max_tokens: 48, ignore_eos: true }),
    });
    assert.equal(again.status, 200);
  },
);

// ------------------------------------------------------------------ the host's failures

test(
  'a restart command that does not exist: a clear non-retryable error; restore cannot fix it either',
  LIMIT,
  async () => {
    const dir = tempDir();
    const configPath = join(dir, 'vllm.yaml');
    const original = configText(1, 0.98);
    writeFileSync(configPath, original);
    const service: ServiceSettings = {
      configPath,
      restartCommand: [join(dir, 'no-such-restart-vllm'), 'now'],
      restartTimeoutMs: 5_000,
      baseUrl: `http://127.0.0.1:${await freePort()}`,
      logPath: null,
      model: null,
      backupDir: join(dir, 'backups'),
    };
    const runCanary = createRunCanary({ service: vllmService(service, { measureVram: unused }) });
    await assert.rejects(
      activityEnv().run(runCanary, canaryInput('lease-bad', candidate(0.9))),
      (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, CANARY_HOST_FAILED);
        assert.equal(err.nonRetryable, true);
        assert.match(err.message, /restart command \[.*no-such-restart-vllm.*\] cannot be run: .* not found/);
        return true;
      },
    );
    const restore = createRestoreService({ service: vllmService(service, { measureVram: unused }) });
    const input = { host: 'gpu-1', kind: 'vllm_oom', leaseId: 'lease-bad', reason: 'test' };
    await assert.rejects(activityEnv().run(restore, input), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, RESTORE_FAILED);
      assert.equal(err.nonRetryable, true);
      return true;
    });
    assert.equal(readFileSync(configPath, 'utf8'), original, 'the config was put back all the same');
  },
);

test(
  'a restart command that fails: its own message; the restore retries until the last attempt',
  LIMIT,
  async () => {
    const dir = tempDir();
    const configPath = join(dir, 'vllm.yaml');
    writeFileSync(configPath, configText(1, 0.98));
    const service: ServiceSettings = {
      configPath,
      restartCommand: [process.execPath, ...SUPERVISOR_ARGS, 'restart', '--state-dir', join(dir, 'none')],
      restartTimeoutMs: 20_000,
      baseUrl: `http://127.0.0.1:${await freePort()}`,
      logPath: null,
      model: null,
      backupDir: join(dir, 'backups'),
    };
    const runCanary = createRunCanary({ service: vllmService(service, { measureVram: unused }) });
    await assert.rejects(
      activityEnv().run(runCanary, canaryInput('lease-x', candidate(0.9))),
      (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.nonRetryable, true);
        assert.match(err.message, /exited 1: supervisor: no supervisor for .*control\.json not found/);
        return true;
      },
    );
    const restore = createRestoreService({ service: vllmService(service, { measureVram: unused }) });
    const input = { host: 'gpu-1', kind: 'vllm_oom', leaseId: 'lease-x', reason: 'test' };
    await assert.rejects(activityEnv(1).run(restore, input), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, RESTORE_INCOMPLETE);
      assert.equal(err.nonRetryable, false, 'retryable before the last attempt');
      return true;
    });
    await assert.rejects(activityEnv(6).run(restore, input), (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure);
      assert.equal(err.type, RESTORE_FAILED);
      assert.equal(err.nonRetryable, true);
      assert.match(err.message, /last attempt \(6 of 6\)/);
      return true;
    });
  },
);

test(
  'a restart command whose children outlive it: canary and restore fail at the deadline, nothing is left behind',
  LIMIT,
  async () => {
    const dir = tempDir();
    const configPath = join(dir, 'vllm.yaml');
    const original = configText(1, 0.98);
    writeFileSync(configPath, original);
    // Each run appends its pid ($$: the group's id); the sleeps hold its output open (issue 13).
    const pidFile = join(dir, 'restart.pids');
    const service: ServiceSettings = {
      configPath,
      restartCommand: ['bash', '-c', `echo $$ >> ${pidFile}; sleep 777 & sleep 778; echo never`],
      restartTimeoutMs: 1_000,
      baseUrl: `http://127.0.0.1:${await freePort()}`,
      logPath: null,
      model: null,
      backupDir: join(dir, 'backups'),
    };
    const runCanary = createRunCanary({ service: vllmService(service, { measureVram: unused }) });
    const { beats, run } = activityEnv();
    let started = performance.now();
    try {
      await assert.rejects(run(runCanary, canaryInput('lease-orphans', candidate(0.9))), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure, String(err));
        assert.equal(err.type, CANARY_HOST_FAILED);
        assert.equal(err.nonRetryable, true);
        assert.match(
          err.message,
          /^restart command \[.*sleep 777 & sleep 778.*\] did not finish within 1000 ms \(KLR_SERVICE_RESTART_TIMEOUT\); its process group was stopped/,
        );
        return true;
      });
      const canaryMs = performance.now() - started;
      assert.ok(canaryMs < 5_000, `the canary ended ${Math.round(canaryMs)} ms after it started`);
      assert.equal(beats.at(-1)?.phase, 'restart');
      const [canaryGroup] = await pidsFrom(pidFile, 1);
      await assertGroupGone(canaryGroup);

      const restore = createRestoreService({ service: vllmService(service, { measureVram: unused }) });
      started = performance.now();
      await assert.rejects(
        activityEnv(1).run(restore, {
          host: 'gpu-1',
          kind: 'vllm_oom',
          leaseId: 'lease-orphans',
          reason: 'test',
        }),
        (err: unknown) => {
          assert.ok(err instanceof ApplicationFailure, String(err));
          assert.equal(err.type, RESTORE_INCOMPLETE, 'a timed-out restart may work when retried');
          assert.equal(err.nonRetryable, false);
          assert.match(
            err.message,
            /^restore attempt 1 of 6 failed: restart command .* did not finish within 1000 ms/,
          );
          return true;
        },
      );
      const restoreMs = performance.now() - started;
      assert.ok(restoreMs < 5_000, `the restore attempt ended ${Math.round(restoreMs)} ms after it started`);
      const restoreGroup = (await pidsFrom(pidFile, 2))[1];
      assert.ok(restoreGroup !== undefined);
      await assertGroupGone(restoreGroup);
      assert.equal(readFileSync(configPath, 'utf8'), original, 'the backup is back in place all the same');
    } finally {
      if (existsSync(pidFile)) for (const pgid of await pidsFrom(pidFile)) killQuietly(-pgid);
    }
  },
);

test(
  'restore without a backup: nothing to put back when the config is the original; RESTORE_FAILED when it differs',
  LIMIT,
  async () => {
    const svc = await startService({ utilization: 0.9 });
    const restore = createRestoreService({
      service: vllmService(svc.settings, { measureVram: measureVramOf(svc) }),
    });
    const restartsBefore = (await svc.status()).restarts;
    // No canary ran for this lease at all: the service is healthy, nothing is restarted.
    const none = await activityEnv().run(restore, {
      host: 'h',
      kind: 'k',
      leaseId: 'never-ran',
      reason: 'r',
    });
    assert.equal(none.downtimeMs, 0);
    assert.equal((await svc.status()).restarts, restartsBefore);

    // A canary whose backup vanished while the candidate is in the file: a person must decide.
    const runCanary = createRunCanary({
      service: vllmService(svc.settings, { measureVram: measureVramOf(svc) }),
    });
    const passed = await activityEnv().run(
      runCanary,
      canaryInput('lease-lost', candidate(0.85), { soakMs: 0 }),
    );
    assert.equal(passed.outcome, 'passed', passed.reason);
    rmSync(join(svc.settings.backupDir, 'vllm.yaml.before-lease-lost'));
    await assert.rejects(
      activityEnv().run(restore, { host: 'h', kind: 'k', leaseId: 'lease-lost', reason: 'r' }),
      (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, RESTORE_FAILED);
        assert.equal(err.nonRetryable, true);
        assert.match(
          err.message,
          /no backup of .*vllm\.yaml for lease lease-lost .* differs from the one before the canary/,
        );
        return true;
      },
    );
  },
);

// ------------------------------------------------------------------ files, log, settings

test('rollbackToPrevious puts the replaced config back, keeps the rolled-back one, and is idempotent', async () => {
  const dir = tempDir();
  const configPath = join(dir, 'vllm.yaml');
  const backupDir = join(dir, 'backups');
  writeFileSync(configPath, 'gpu-memory-utilization: 0.98 # original\n');
  chmodSync(configPath, 0o600);
  await assert.rejects(rollbackToPrevious(configPath, backupDir), (err: unknown) => {
    assert.ok(err instanceof ConfigFileError);
    assert.match(err.message, /no previous config recorded .* nothing to roll back to/);
    return true;
  });
  const backup = await backupConfig(configPath, backupDir, 'L1');
  assert.equal(await backupConfig(configPath, backupDir, 'L1'), backup, 'same lease, same backup');
  await atomicWriteFile(configPath, 'gpu-memory-utilization: 0.9 # original\n');
  assert.equal(readFileSync(backup, 'utf8'), 'gpu-memory-utilization: 0.98 # original\n', 'backup untouched');
  await recordPromotion(configPath, backupDir, 'L1');

  const first = await rollbackToPrevious(configPath, backupDir);
  assert.equal(first.changed, true);
  assert.equal(readFileSync(configPath, 'utf8'), 'gpu-memory-utilization: 0.98 # original\n');
  assert.equal(statSync(configPath).mode & 0o777, 0o600);
  assert.equal(readFileSync(first.rolledBackPath ?? '', 'utf8'), 'gpu-memory-utilization: 0.9 # original\n');
  const second = await rollbackToPrevious(configPath, backupDir);
  assert.deepEqual(second, { previousPath: first.previousPath, changed: false, rolledBackPath: null });
});

test('atomic writes keep mode, follow a symlink and sweep temp files of dead writers', async () => {
  const dir = tempDir();
  const real = join(dir, 'real.yaml');
  writeFileSync(real, 'a: 1\n');
  chmodSync(real, 0o664);
  const link = join(dir, 'link.yaml');
  const { symlinkSync, lstatSync } = await import('node:fs');
  symlinkSync(real, link);
  writeFileSync(join(dir, '.real.yaml.tmp-999999999-deadbeef'), 'junk');
  await atomicWriteFile(link, 'a: 2\n');
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link stays a link');
  assert.equal(readFileSync(real, 'utf8'), 'a: 2\n');
  assert.equal(statSync(real).mode & 0o777, 0o664, 'group-writable mode kept despite the umask');
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.includes('.tmp-')),
    [],
  );
  await assert.rejects(atomicWriteFile(join(dir, 'no-such-dir', 'x.yaml'), 'x'), ConfigFileError);
});

test('the log watch finds vLLM memory failures in appended lines only, across partial writes and truncation', async () => {
  const dir = tempDir();
  const log = join(dir, 'service.log');
  writeFileSync(log, 'torch.OutOfMemoryError: CUDA out of memory. (an old crash, before the watch)\n');
  const watcher = await LogWatcher.fromEnd(log);
  assert.equal(await watcher.poll(), null, 'what was there before is not seen');
  appendFileSync(
    log,
    '(APIServer pid=1) INFO: Started server process\n(EngineCore_0 pid=1) ERROR 11-28 [core.py:700] torch.OutOf',
  );
  assert.equal(await watcher.poll(), null, 'half a line is not judged yet');
  appendFileSync(log, 'MemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n');
  assert.match(
    (await watcher.poll()) ?? '',
    /^\(EngineCore_0 pid=1\) ERROR .*torch\.OutOfMemoryError: CUDA out of memory/,
  );
  truncateSync(log, 0);
  appendFileSync(log, 'ValueError: No available memory for the cache blocks.\n');
  assert.match(
    (await watcher.poll()) ?? '',
    /No available memory for the cache blocks/,
    'a truncated log is read again',
  );

  for (const line of [
    'vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.',
    'ValueError: Free memory on device (69.88/79.65 GiB) on startup is less than desired GPU memory utilization (0.9, 71.68 GiB).',
    "ValueError: To serve at least one request with the models's max seq len (131072), (16.00 GiB KV cache is needed, which is larger than the available KV cache memory (6.76 GiB).",
    'RuntimeError: CUDA error: out of memory',
  ])
    assert.ok(isGpuMemoryFailure(line), line);
  for (const line of [
    'INFO 11-28 [gpu_worker.py:276] Available KV cache memory: 54.55 GiB',
    'ValueError: invalid literal for int()',
    'INFO:     127.0.0.1:41604 - "POST /v1/completions HTTP/1.1" 200 OK',
  ])
    assert.ok(!isGpuMemoryFailure(line), line);

  const quiet = await watchLog({ path: log, durationMs: 300, intervalMs: 50 });
  assert.equal(quiet, null);
  const loud = watchLog({ path: log, durationMs: 1_500, intervalMs: 50 });
  setTimeout(() => appendFileSync(log, 'torch.OutOfMemoryError: CUDA out of memory'), 200);
  const t0 = performance.now();
  assert.match((await loud) ?? '', /CUDA out of memory/, 'a last line without newline counts at the end');
  assert.ok(performance.now() - t0 >= 1_200, 'unterminated lines are judged only when the watch ends');
});

test('service settings: defaults, and one clear line per bad value (a shell string is refused)', () => {
  const base = {
    KLR_SERVICE_CONFIG: '/etc/vllm/config.yaml',
    KLR_SERVICE_RESTART_CMD: '["systemctl","restart","vllm"]',
  };
  const s = loadServiceSettings({ ...base, KLR_DATA_DIR: '/var/lib/kloros' });
  assert.deepEqual(s, {
    configPath: '/etc/vllm/config.yaml',
    restartCommand: ['systemctl', 'restart', 'vllm'],
    restartTimeoutMs: 60_000,
    baseUrl: 'http://127.0.0.1:8000',
    logPath: null,
    model: null,
    backupDir: '/var/lib/kloros/backups',
    candidateFloors: {
      maxModelLen: null,
      maxNumSeqs: null,
      maxNumBatchedTokens: null,
      gpuMemoryUtilization: null,
    },
    probe: { promptTokens: null, outputTokens: null },
  });
  const bad = (env: Record<string, string>, re: RegExp) =>
    assert.throws(
      () => loadServiceSettings({ ...base, ...env }),
      (err: unknown) => err instanceof SettingsError && re.test(err.message),
    );
  bad(
    { KLR_SERVICE_RESTART_CMD: 'systemctl restart vllm' },
    /^invalid setting KLR_SERVICE_RESTART_CMD="systemctl restart vllm": expected a JSON array of strings .*never run through a shell.*\["systemctl","restart","vllm"\]$/,
  );
  bad({ KLR_SERVICE_RESTART_CMD: '[]' }, /KLR_SERVICE_RESTART_CMD="\[\]": expected a non-empty JSON array/);
  bad({ KLR_SERVICE_RESTART_CMD: '["ok", 3]' }, /KLR_SERVICE_RESTART_CMD/);
  bad(
    { KLR_SERVICE_CONFIG: '' },
    /^invalid setting KLR_SERVICE_CONFIG="": expected the path of the vLLM YAML config/,
  );
  bad(
    { KLR_SERVICE_RESTART_TIMEOUT: '1.5' },
    /KLR_SERVICE_RESTART_TIMEOUT="1\.5": expected a duration such as 5m or 300/,
  );
  bad(
    { KLR_SERVICE_URL: 'localhost:8000' },
    /KLR_SERVICE_URL="localhost:8000": expected the service's base URL/,
  );
  const full = loadServiceSettings({
    ...base,
    KLR_SERVICE_URL: 'http://gpu-1:8001/',
    KLR_SERVICE_RESTART_TIMEOUT: '120',
    KLR_SERVICE_LOG: '/var/log/vllm.log',
    KLR_SERVICE_MODEL: 'llama',
    KLR_BACKUP_DIR: '/srv/backups',
  });
  assert.equal(full.baseUrl, 'http://gpu-1:8001');
  assert.equal(full.restartTimeoutMs, 120_000);
  assert.equal(full.logPath, '/var/log/vllm.log');
  assert.equal(full.model, 'llama');
  assert.equal(full.backupDir, '/srv/backups');

  // The candidate floors and the probe's size: blank derives them; a bad value is one clear line.
  const sized = loadServiceSettings({
    ...base,
    KLR_CANDIDATE_MIN_MAX_MODEL_LEN: '4096',
    KLR_CANDIDATE_MIN_MAX_NUM_SEQS: '32',
    KLR_CANDIDATE_MIN_MAX_NUM_BATCHED_TOKENS: '2048',
    KLR_CANDIDATE_MIN_GPU_MEMORY_UTILIZATION: '0.5',
    KLR_PROBE_PROMPT_TOKENS: '1024',
    KLR_PROBE_OUTPUT_TOKENS: ' 128 ',
  });
  assert.deepEqual(sized.candidateFloors, {
    maxModelLen: 4096,
    maxNumSeqs: 32,
    maxNumBatchedTokens: 2048,
    gpuMemoryUtilization: 0.5,
  });
  assert.deepEqual(sized.probe, { promptTokens: 1024, outputTokens: 128 });
  bad(
    { KLR_CANDIDATE_MIN_MAX_MODEL_LEN: '8' },
    /^invalid setting KLR_CANDIDATE_MIN_MAX_MODEL_LEN="8": expected the shortest max-model-len a candidate may propose, whole tokens ≥ 16/,
  );
  bad({ KLR_CANDIDATE_MIN_MAX_MODEL_LEN: '4k' }, /KLR_CANDIDATE_MIN_MAX_MODEL_LEN="4k"/);
  bad({ KLR_CANDIDATE_MIN_MAX_NUM_SEQS: '0' }, /KLR_CANDIDATE_MIN_MAX_NUM_SEQS="0": expected the fewest/);
  bad({ KLR_CANDIDATE_MIN_MAX_NUM_BATCHED_TOKENS: '-1' }, /KLR_CANDIDATE_MIN_MAX_NUM_BATCHED_TOKENS="-1"/);
  bad(
    { KLR_CANDIDATE_MIN_GPU_MEMORY_UTILIZATION: '1.2' },
    /KLR_CANDIDATE_MIN_GPU_MEMORY_UTILIZATION="1\.2": expected the lowest gpu-memory-utilization a candidate may propose, a fraction in \(0, 1\]/,
  );
  bad({ KLR_CANDIDATE_MIN_GPU_MEMORY_UTILIZATION: '0' }, /KLR_CANDIDATE_MIN_GPU_MEMORY_UTILIZATION="0"/);
  bad(
    { KLR_PROBE_PROMPT_TOKENS: 'lots' },
    /^invalid setting KLR_PROBE_PROMPT_TOKENS="lots": expected the canary probe's prompt length, whole tokens ≥ 1.*90th percentile/,
  );
  bad(
    { KLR_PROBE_OUTPUT_TOKENS: '0' },
    /KLR_PROBE_OUTPUT_TOKENS="0": expected the tokens the canary probe asks/,
  );
});
