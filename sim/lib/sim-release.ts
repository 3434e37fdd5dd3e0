// The vLLM release the simulator plays (SIM_VLLM_VERSION), read from its version string as vLLM prints it
// ("0.6.3.post1", "0.10.1.1", "0.11.1rc6.dev35+g29de3cdee"). Only the release (0.MINOR.PATCH) decides
// what the simulator prints; post, rc, dev and local parts are kept in the text and otherwise ignored.
// Strict where the service side is lenient: the simulator refuses a version whose wording it does not know
// rather than print another release's. Pure.

/** V0: LLMEngine (the default up to 0.7.x); V1: EngineCore (the default from 0.8.0). */
export type Engine = 'v0' | 'v1';

export interface SimRelease {
  /** As given, and as the log and /version print it. */
  version: string;
  minor: number;
  patch: number;
  engine: Engine;
}

/** The oldest and newest releases whose start-up wording is known (test/fixtures/vllm-startup-reports). */
export const OLDEST_RELEASE = '0.5.0';
export const NEWEST_MINOR = 33;

/** What SIM_VLLM_VERSION must look like, for error messages. */
export const RELEASE_EXPECTED =
  `a vLLM release from ${OLDEST_RELEASE} to 0.${NEWEST_MINOR}.x as vLLM prints its version ` +
  '(e.g. 0.6.3.post1, 0.7.3, 0.8.5.post1, 0.10.1.1, 0.11.1rc6.dev35+g29de3cdee)';

// PEP 440 as vLLM's wheels spell it: release (a fourth number as in 0.10.1.1), rc, post, dev, local.
const VERSION =
  /^0\.(\d+)\.(\d+)(?:\.\d+)?(?:rc\d+)?(?:\.post\d+)?(?:\.dev\d+)?(?:\+[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*)?$/;

export class ReleaseError extends Error {}

/** The release `version` names; a ReleaseError saying why when it is not one the simulator can play. */
export function parseSimRelease(version: string): SimRelease {
  const m = VERSION.exec(version);
  if (!m) throw new ReleaseError(`expected ${RELEASE_EXPECTED}`);
  const minor = Number(m[1]);
  const patch = Number(m[2]);
  if (minor < 5) {
    throw new ReleaseError(
      `vLLM ${version} is older than the oldest release whose start-up wording is known (${OLDEST_RELEASE}); expected ${RELEASE_EXPECTED}`,
    );
  }
  if (minor > NEWEST_MINOR) {
    throw new ReleaseError(
      `vLLM ${version} is newer than the newest release whose start-up wording is known (0.${NEWEST_MINOR}.x); expected ${RELEASE_EXPECTED}`,
    );
  }
  return { version, minor, patch, engine: minor >= 8 ? 'v1' : 'v0' };
}

/** Whether `r` is 0.minor.patch or later. */
export function releaseAtLeast(r: SimRelease, minor: number, patch = 0): boolean {
  return r.minor > minor || (r.minor === minor && r.patch >= patch);
}

/**
 * What the release does with memory other processes hold on the GPU when it sizes the KV cache
 * (test/fixtures/vllm-startup-reports/README.md, "How each release accounts memory"):
 * - `startup_check` (V1 0.9.1 →): refuses to start when less than total × utilization is free;
 * - `charged` (V0 0.6.4.x, V1 0.8.0 – 0.9.0): counts it as non-torch memory, so the KV cache shrinks by it;
 * - `physical` (V0 0.5 – 0.6.3, 0.6.5 – 0.7.x): leaves it out of the budget; the KV cache is sized as if the
 *   GPU were free and its allocation fails when it is not.
 */
export type OthersAccounting = 'startup_check' | 'charged' | 'physical';

export function othersAccounting(r: SimRelease): OthersAccounting {
  if (r.engine === 'v1') return releaseAtLeast(r, 9, 1) ? 'startup_check' : 'charged';
  return releaseAtLeast(r, 6, 4) && !releaseAtLeast(r, 6, 5) ? 'charged' : 'physical';
}
