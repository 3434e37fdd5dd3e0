// Which vLLM release the service runs, for the memory model (src/domain/vllm-release.ts): the banner of
// its latest start in the log ("vLLM API server version 0.10.1.1", "Initializing an LLM engine
// (v0.6.3.post1)"), else its own answer on GET /version ({"version": "0.10.1.1"}). Either may be missing
// (no log configured, the service down after an OOM): then the release is unknown and the plan conservative.
import { type VllmRelease, parseVllmRelease } from '../domain/vllm-release.js';
import type { StartupReport } from '../domain/startup-report.js';
import { describeFetchError } from './health.js';
import { requestSignal } from './request-signal.js';

/** How long GET /version may take: the service may be down, and a prediction does not wait for it. */
export const VERSION_TIMEOUT_MS = 2000;
/** /version answers a few dozen bytes; anything much longer is not vLLM's answer. */
const MAX_VERSION_BODY = 4096;

export interface ServiceRelease {
  release: VllmRelease | null;
  /** Where it came from, or why it is unknown: for the recommendation's basis. */
  how: string;
}

/** The release from the log's latest start, else from the service's /version, else unknown (and why). */
export async function serviceRelease(
  report: StartupReport | null,
  baseUrl: string | null,
  timeoutMs = VERSION_TIMEOUT_MS,
): Promise<ServiceRelease> {
  const fromLog = report?.version ? parseVllmRelease(report.version, report.engine) : null;
  if (fromLog) return { release: fromLog, how: `vLLM ${fromLog.version} (the log's banner)` };
  if (baseUrl === null) return { release: null, how: 'vLLM release unknown (no banner in the log)' };
  const answer = await fetchVersion(baseUrl, timeoutMs);
  if (typeof answer !== 'string') {
    return { release: null, how: `vLLM release unknown (no banner in the log; GET /version: ${answer.why})` };
  }
  const release = parseVllmRelease(answer, report?.engine);
  return release
    ? { release, how: `vLLM ${release.version} (GET /version)` }
    : {
        release: null,
        how: `vLLM release unknown (no banner in the log; GET /version answered ${JSON.stringify(answer.slice(0, 40))}, not a version)`,
      };
}

/** The version string the service answers on GET /version, or why there is none. Never throws. */
export async function fetchVersion(baseUrl: string, timeoutMs: number): Promise<string | { why: string }> {
  try {
    const res = await fetch(`${baseUrl.replace(/\/+$/, '')}/version`, {
      signal: requestSignal(timeoutMs, undefined),
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      return { why: `HTTP ${res.status}` };
    }
    const text = await res.text();
    if (text.length > MAX_VERSION_BODY) return { why: `an answer of ${text.length} bytes, not a version` };
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { why: 'an answer that is not JSON' };
    }
    const version = (body as { version?: unknown } | null)?.version;
    return typeof version === 'string' ? version : { why: 'JSON without a "version" string' };
  } catch (err) {
    return { why: describeFetchError(err) };
  }
}
