// A real Prometheus (Debian's /usr/bin/prometheus, installed by .ci/run) on loopback for end-to-end
// tests: a temporary config and storage, started with execa, stopped by its pid, and a small client for
// its HTTP API.
import { setTimeout as delay } from 'node:timers/promises';
import { access, constants, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { stringify as toYaml } from 'yaml';
import { pickFreePort } from '../../src/servers/dev-server.js';

export const PROMETHEUS_BIN = process.env.KLR_PROMETHEUS ?? '/usr/bin/prometheus';

export interface ScrapeTarget {
  job: string;
  /** host:port */
  target: string;
  /** Extra target labels (as a deployment's scrape config would set them). */
  labels?: Record<string, string>;
}

export interface PrometheusHandle {
  url: string;
  pid: number;
  /** Everything Prometheus logged (stderr). */
  log(): string;
  /** Instant query; the result vector/matrix/scalar as Prometheus returns it. */
  query(expr: string): Promise<PromQueryResult>;
  alerts(): Promise<PromAlert[]>;
  stop(): Promise<void>;
}

export interface PromQueryResult {
  resultType: 'vector' | 'matrix' | 'scalar' | 'string';
  result: unknown;
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
  value: string;
}

/** Fails with what to install when Debian's Prometheus is not there. */
export async function requirePrometheus(): Promise<string> {
  try {
    await access(PROMETHEUS_BIN, constants.X_OK);
  } catch {
    throw new Error(
      `${PROMETHEUS_BIN} not found: install the Debian package "prometheus" (sudo apt-get install prometheus; .ci/run does this), or set KLR_PROMETHEUS to a Prometheus 2.x binary`,
    );
  }
  return PROMETHEUS_BIN;
}

export async function startPrometheus(opts: {
  targets: ScrapeTarget[];
  /** Rule files (paths) to load. */
  ruleFiles: string[];
  intervalSeconds?: number;
}): Promise<PrometheusHandle> {
  const bin = await requirePrometheus();
  const dir = await mkdtemp(join(tmpdir(), 'klr-prometheus-'));
  const port = await pickFreePort();
  const interval = `${opts.intervalSeconds ?? 1}s`;
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: opts.ruleFiles,
    scrape_configs: opts.targets.map((t) => ({
      job_name: t.job,
      static_configs: [{ targets: [t.target], ...(t.labels ? { labels: t.labels } : {}) }],
    })),
  };
  const configPath = join(dir, 'prometheus.yml');
  await writeFile(configPath, toYaml(config));
  let log = '';
  const proc: ResultPromise = execa(
    bin,
    [
      `--config.file=${configPath}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
      // Debian's build serves its console templates from /etc; none are needed here.
      `--web.console.templates=${dir}`,
      `--web.console.libraries=${dir}`,
    ],
    { stdout: 'ignore', stderr: 'pipe', reject: false, cleanup: true },
  );
  proc.stderr?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  let exited = false;
  void proc.then(() => {
    exited = true;
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (!exited && proc.pid !== undefined) {
      proc.kill('SIGTERM');
      const done = await Promise.race([proc.then(() => true), delay(20_000, false, { ref: false })]);
      if (!done) {
        proc.kill('SIGKILL');
        await proc;
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`prometheus exited at start-up: ${log}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready after 60 s: ${log}`);
    }
    await delay(200);
  }

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success')
      throw new Error(`${path}: ${body.errorType ?? ''} ${body.error ?? res.status}`);
    return body.data;
  };

  return {
    url,
    pid: proc.pid as number,
    log: () => log,
    query: (expr) => api<PromQueryResult>(`/api/v1/query?query=${encodeURIComponent(expr)}`),
    alerts: async () => (await api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts,
    stop,
  };
}
