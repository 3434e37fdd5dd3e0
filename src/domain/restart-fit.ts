// Whether the settings leave room for the service's own restart, as measured on this host: said once at
// the worker's start, because otherwise every canary is refused for its budget, or a canary and then its
// restore both time out and latch the host (a large model takes minutes to load and capture graphs).

export interface RestartFitInput {
  /** KLR_GPU_MAINTENANCE_MAX_DOWNTIME, seconds. */
  budgetSeconds: number;
  /** KLR_SERVICE_RESTART_TIMEOUT, ms; null when no service is configured. */
  restartTimeoutMs: number | null;
  /** The median restart of this host's recent promotions; null before the first. */
  measured: { medianMs: number; promotions: number } | null;
}

/** One warning per setting that cannot hold one measured restart; none when they fit or nothing is measured. */
export function restartFitWarnings(input: RestartFitInput): string[] {
  const { measured } = input;
  if (measured === null) return [];
  const restart = `the service's restart as measured here (median ${seconds(measured.medianMs)} over ${measured.promotions} promotion${measured.promotions === 1 ? '' : 's'})`;
  const warnings: string[] = [];
  if (input.budgetSeconds * 1000 < measured.medianMs) {
    warnings.push(
      `KLR_GPU_MAINTENANCE_MAX_DOWNTIME (${input.budgetSeconds} s) cannot cover ${restart}: every canary will be refused for its budget. Give it at least two restarts (a canary and its restore), e.g. ${Math.ceil((2 * measured.medianMs) / 60_000)}m`,
    );
  }
  if (input.restartTimeoutMs !== null && input.restartTimeoutMs < measured.medianMs) {
    warnings.push(
      `KLR_SERVICE_RESTART_TIMEOUT (${seconds(input.restartTimeoutMs)}) is shorter than ${restart}: a canary and then its restore would both time out and latch the host. Give it room, e.g. ${Math.ceil((1.5 * measured.medianMs) / 60_000)}m`,
    );
  }
  return warnings;
}

const seconds = (ms: number): string => `${Math.round(ms / 100) / 10} s`;
