// Where each Temporal server comes from, in order: a binary the user already has (its variable, then
// PATH), one this project cached earlier (the SDK's download, then our build), the Temporal SDK's own
// download from temporal.download when a short probe says the host answers, else our build (Go for the
// CLI, Maven for the Java test server). The choice is a pure function of what was found and what the
// probe said (`planServer`); `resolveServer` gathers those facts, acts on the plan and says, in one log
// line, which path it took and why.
import { rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { SettingsError } from '../config/settings.js';
import { parseDurationSeconds } from '../config/duration.js';
import { formatDuration } from '../domain/duration-text.js';
import { findOnPath, isExecutableFile, withLock, type Log } from './install.js';

/** What a probe of the download host found. `why` is a whole phrase ("temporal.download unreachable: …"). */
export type Probe = { ok: true; ms: number; host: string } | { ok: false; ms: number; why: string };

/** What was found on this machine before anything is fetched or built. */
export interface Found {
  /** The override variable (TEMPORAL_CLI, KLR_TEST_SERVER) when it is set. */
  override?: { name: string; value: string; executable: boolean };
  /** The binary's name on PATH, when one is there. */
  onPath?: string;
  /** The SDK's earlier download, in the project's cache. */
  downloaded?: string;
  /** This project's earlier build, in the project's cache. */
  built?: string;
  /** How this project builds it ("go install", "Maven"), for the reasons. */
  buildHow?: string;
  /** Why the SDK's download is not even tried (switched off, SDK package missing); unset = it may be. */
  noDownload?: string;
}

/** What happened so far on the way down the list. */
export interface Attempts {
  probe?: Probe;
  /** The SDK's download was tried and failed (or timed out): why. */
  downloadFailed?: string;
}

export type Via = 'env' | 'path' | 'download-cache' | 'build-cache' | 'download' | 'build';

export type Plan =
  | { do: 'use'; path: string; via: Via; reason: string }
  | { do: 'probe' }
  | { do: 'download'; reason: string }
  | { do: 'build'; reason: string }
  | { do: 'fail'; reason: string };

/** The next step: pure, so that every branch of the order can be tested without a network or a build. */
export function planServer(found: Found, tried: Attempts = {}): Plan {
  const { override } = found;
  if (override) {
    return override.executable
      ? { do: 'use', path: override.value, via: 'env', reason: `from ${override.name}` }
      : {
          do: 'fail',
          reason: `${override.name}=${override.value} is not an executable file. Fix the path or unset ${override.name}.`,
        };
  }
  if (found.onPath) return { do: 'use', path: found.onPath, via: 'path', reason: 'on PATH' };
  if (found.downloaded) {
    return {
      do: 'use',
      path: found.downloaded,
      via: 'download-cache',
      reason: 'downloaded earlier by the Temporal SDK, cached',
    };
  }
  if (found.built) {
    const how = found.buildHow ? ` with ${found.buildHow}` : '';
    return { do: 'use', path: found.built, via: 'build-cache', reason: `built earlier${how}, cached` };
  }
  if (found.noDownload) return { do: 'build', reason: found.noDownload };
  if (tried.downloadFailed) return { do: 'build', reason: tried.downloadFailed };
  if (!tried.probe) return { do: 'probe' };
  if (!tried.probe.ok) return { do: 'build', reason: tried.probe.why };
  return { do: 'download', reason: `${tried.probe.host} answered in ${secondsText(tried.probe.ms)}` };
}

export const DOWNLOAD_HOST = 'temporal.download';

/** "40 ms", "0.4 s", "5 s", "12 s", "1 m 30 s". */
export function secondsText(ms: number): string {
  if (ms < 100) return `${Math.round(ms)} ms`;
  if (ms >= 60_000) return formatDuration(ms);
  return `${Number((ms / 1000).toFixed(ms < 10_000 ? 1 : 0))} s`;
}

/** Why a fetch failed, in a few words: "timeout 5 s", "ENOTFOUND temporal.download", "ECONNREFUSED …". */
function fetchFailure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `timeout ${secondsText(timeoutMs)}`;
  const cause = e.cause;
  if (cause?.code)
    return cause.message?.includes(cause.code)
      ? cause.message
      : `${cause.code} ${cause.message ?? ''}`.trim();
  return cause?.message ?? e.message ?? String(err);
}

/**
 * Asks the download host what the SDK would ask (the JSON that names the archive), then asks the
 * archive's host for its headers (HEAD, no body): both within `timeoutMs` in all. Answers, never throws.
 */
export async function probeDownloadHost(infoUrl: string, timeoutMs: number): Promise<Probe> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const host = new URL(infoUrl).host;
  const signal = AbortSignal.timeout(timeoutMs);
  let archiveUrl: string;
  try {
    const res = await fetch(infoUrl, { signal, headers: { accept: 'application/json' } });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      return { ok: false, ms: ms(), why: `${host} answered HTTP ${res.status} for ${infoUrl}` };
    }
    const info = (await res.json().catch(() => null)) as { archiveUrl?: unknown } | null;
    if (typeof info?.archiveUrl !== 'string') {
      return { ok: false, ms: ms(), why: `${host} answered, but with no archiveUrl` };
    }
    archiveUrl = info.archiveUrl;
  } catch (err) {
    return { ok: false, ms: ms(), why: `${host} unreachable (${fetchFailure(err, timeoutMs)})` };
  }
  const archiveHost = new URL(archiveUrl).host;
  try {
    // Any answer will do: the download itself says whether it is served.
    await fetch(archiveUrl, { method: 'HEAD', signal });
    return { ok: true, ms: ms(), host };
  } catch (err) {
    return {
      ok: false,
      ms: ms(),
      why: `${host} answered, but the archive's host ${archiveHost} is unreachable (${fetchFailure(err, timeoutMs)})`,
    };
  }
}

/** The download settings, validated: a bad value stops with one line naming it. */
export interface DownloadSettings {
  enabled: boolean;
  probeTimeoutMs: number;
  downloadTimeoutMs: number;
}

export const DEFAULT_PROBE_TIMEOUT_MS = 5_000;
export const DEFAULT_DOWNLOAD_TIMEOUT_MS = 180_000;

export function downloadSettings(env: NodeJS.ProcessEnv = process.env): DownloadSettings {
  const mode = (env.KLR_SERVER_DOWNLOAD ?? '').trim().toLowerCase();
  if (!['', 'auto', 'off'].includes(mode)) {
    throw new SettingsError('KLR_SERVER_DOWNLOAD', env.KLR_SERVER_DOWNLOAD ?? '', 'auto or off');
  }
  const duration = (name: string, fallbackMs: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return fallbackMs;
    const s = parseDurationSeconds(raw, 's', true);
    if (s === null || s <= 0) {
      throw new SettingsError(
        name,
        raw,
        'a duration above zero such as 5s, 2500ms or 3m (a bare number is seconds)',
      );
    }
    return s * 1000;
  };
  return {
    enabled: mode !== 'off',
    probeTimeoutMs: duration('KLR_SERVER_PROBE_TIMEOUT', DEFAULT_PROBE_TIMEOUT_MS),
    downloadTimeoutMs: duration('KLR_SERVER_DOWNLOAD_TIMEOUT', DEFAULT_DOWNLOAD_TIMEOUT_MS),
  };
}

/**
 * Runs `work`, logging `line(elapsed)` every `everyMs` while it runs, so that a long build or download
 * is never silent.
 */
export async function withProgress<T>(
  work: () => Promise<T>,
  opts: { log?: Log; everyMs: number; line: (elapsedMs: number) => string | Promise<string> },
): Promise<T> {
  const { log } = opts;
  if (!log) return work();
  const started = Date.now();
  const timer = setInterval(() => {
    void Promise.resolve(opts.line(Date.now() - started)).then(log, () => undefined);
  }, opts.everyMs);
  timer.unref();
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

export class TimeoutError extends Error {}

/**
 * `promise`, or a TimeoutError after `ms`. The work behind it goes on (a native download cannot be
 * cancelled); a late failure of it is swallowed here, so it never surfaces as an unhandled rejection.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  promise.catch(() => undefined);
  const ac = new AbortController();
  try {
    return await Promise.race([
      promise,
      sleep(ms, undefined, { signal: ac.signal }).then(() => {
        throw new TimeoutError(`${what} did not finish within ${secondsText(ms)}`);
      }),
    ]);
  } finally {
    ac.abort();
  }
}

/** One server and how to get it each way; the functions do the work, `resolveServer` decides. */
export interface ServerSource {
  /** As in log lines: "temporal CLI", "temporal test server". */
  what: string;
  /** The variable that names a binary to use as is. */
  overrideVar: string;
  /** The binary's name on PATH. */
  pathName: string;
  /** Where the SDK's download lands (a file in the project's cache). */
  downloadedPath: string;
  /** The project's own build, when it was built. */
  builtPath: string;
  /** The URL the SDK asks first; the probe asks the same. */
  infoUrl: string;
  /** How it is built: "go install", "Maven". */
  buildHow: string;
  /** Why downloading cannot work here at all, found without a network (e.g. the SDK package missing). */
  cannotDownload?: () => string | undefined;
  /** Downloads with the SDK into downloadedPath. */
  download(log?: Log): Promise<void>;
  /** Builds into builtPath (waits for, or reuses, a concurrent build). */
  build(log?: Log): Promise<void>;
}

export interface Resolved {
  path: string;
  via: Via;
  /** The one line that says which path was taken and why. */
  line: string;
}

export const DOWNLOAD_PROGRESS_MS = 5_000;
export const BUILD_PROGRESS_MS = 15_000;

export interface ResolveOptions {
  /** Progress lines and the line that says which way the binary came. */
  log?: Log;
  /** Where TEMPORAL_CLI/KLR_TEST_SERVER, PATH and the KLR_SERVER_* settings are read; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** How often a download and a build say they are still running; default 5 s and 15 s. */
  downloadProgressMs?: number;
  buildProgressMs?: number;
}

/** Finds, downloads or builds `source`'s binary, in the order above; logs the outcome in one line. */
export async function resolveServer(source: ServerSource, opts: ResolveOptions = {}): Promise<Resolved> {
  const { log, env = process.env } = opts;
  const found = await lookUp(source, env);
  const tried: Attempts = {};
  for (;;) {
    const plan = planServer(found, tried);
    switch (plan.do) {
      case 'fail':
        throw new Error(plan.reason);
      case 'use':
        return told(log, {
          path: plan.path,
          via: plan.via,
          line: `${source.what}: ${plan.path} (${plan.reason})`,
        });
      case 'probe': {
        const { probeTimeoutMs } = downloadSettings(env);
        tried.probe = await probeDownloadHost(source.infoUrl, probeTimeoutMs);
        break;
      }
      case 'download': {
        const started = Date.now();
        try {
          await downloadBounded(
            source,
            log,
            downloadSettings(env).downloadTimeoutMs,
            opts.downloadProgressMs,
          );
        } catch (err) {
          tried.downloadFailed = `the Temporal SDK's download failed after ${secondsText(Date.now() - started)}: ${shortError(err)}`;
          break;
        }
        const took = secondsText(Date.now() - started);
        return told(log, {
          path: source.downloadedPath,
          via: 'download',
          line: `${source.what}: downloaded by the Temporal SDK in ${took}: ${plan.reason} → ${source.downloadedPath}`,
        });
      }
      case 'build': {
        log?.(`${source.what}: ${plan.reason}; building it with ${source.buildHow}`);
        const started = Date.now();
        try {
          await withProgress(() => source.build(log), {
            log,
            everyMs: opts.buildProgressMs ?? BUILD_PROGRESS_MS,
            line: (ms) => `${source.what}: still building with ${source.buildHow}, ${secondsText(ms)} so far`,
          });
        } catch (err) {
          throw new Error(
            `${source.what}: ${plan.reason}, and building it failed. ${(err as Error).message}`,
          );
        }
        const took = secondsText(Date.now() - started);
        return told(log, {
          path: source.builtPath,
          via: 'build',
          line: `${source.what}: built with ${source.buildHow} in ${took}: ${plan.reason} → ${source.builtPath}`,
        });
      }
    }
  }
}

function told(log: Log | undefined, resolved: Resolved): Resolved {
  log?.(resolved.line);
  return resolved;
}

/**
 * The SDK's error in a line: without its "Failed to start ephemeral server" preamble, the URLs (the probe
 * and docs name them) and the segments it repeats ("error sending request for url (…): error sending …").
 */
export function shortError(err: unknown): string {
  const text = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
  const parts = text
    .replace(/^Failed to start ephemeral server: /i, '')
    .replace(/ \(https?:\/\/[^)]*\)/g, '')
    .split(': ');
  return parts.filter((p, i) => p !== parts[i - 1]).join(': ');
}

async function lookUp(source: ServerSource, env: NodeJS.ProcessEnv): Promise<Found> {
  const value = env[source.overrideVar];
  if (value) {
    return { override: { name: source.overrideVar, value, executable: await isExecutableFile(value) } };
  }
  const found: Found = { buildHow: source.buildHow };
  found.onPath = await findOnPath(source.pathName, env);
  if (found.onPath) return found;
  if (await isExecutableFile(source.downloadedPath)) found.downloaded = source.downloadedPath;
  if (await isExecutableFile(source.builtPath)) found.built = source.builtPath;
  if (!downloadSettings(env).enabled) found.noDownload = 'downloads are off (KLR_SERVER_DOWNLOAD=off)';
  else found.noDownload = source.cannotDownload?.();
  return found;
}

/** The SDK's download under our lock, bounded by `timeoutMs`, with a progress line every few seconds. */
async function downloadBounded(
  source: ServerSource,
  log: Log | undefined,
  timeoutMs: number,
  everyMs = DOWNLOAD_PROGRESS_MS,
): Promise<void> {
  const dest = source.downloadedPath;
  const partial = `${dest}.downloading`;
  await withLock(
    `${dest}.lock`,
    async () => {
      if (await isExecutableFile(dest)) return; // another process downloaded it while we waited
      // The SDK waits a minute for a `.downloading` file to go stale; under our lock, none is live.
      await rm(partial, { force: true });
      log?.(`${source.what}: downloading it with the Temporal SDK (up to ${secondsText(timeoutMs)})`);
      await withProgress(() => within(source.download(log), timeoutMs, "the Temporal SDK's download"), {
        log,
        everyMs,
        line: async (ms) => {
          const size = await stat(partial).then(
            (s) => `, ${(s.size / 1e6).toFixed(1)} MB so far`,
            () => '',
          );
          return `${source.what}: still downloading with the Temporal SDK, ${secondsText(ms)}${size}`;
        },
      });
      if (!(await isExecutableFile(dest))) {
        throw new Error(`the SDK finished, but ${dest} is not there (or not executable)`);
      }
    },
    { log, what: `downloading the ${source.what} into ${dest}`, timeoutMs },
  );
}
