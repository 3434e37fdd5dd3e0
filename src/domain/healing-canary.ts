// How a canary's end changes a HealingWorkflow's state: the record of the last canary, the counters,
// the escalation (cleared on promotion) and the release the host coordinator is sent. No Temporal
// imports and no clock; the workflow runs the activities and passes their results and the time.
import type { CanaryMode } from './policy.js';
import { type EscalationState, disarm, record } from './healing-escalation.js';
import { type CanaryRecord, predictionCheck } from './healing-state.js';
import type { CanaryAudit, LeaseRelease } from './host-ledger.js';
import type { CandidateConfig, StartMeasurement } from './recommendation.js';
import { bump, canaryRunKey, observeDuration } from './workflow-counters.js';

/** What the canary activity reports. */
export interface CanaryResult {
  outcome: 'passed' | 'failed';
  reason: string;
  /** Restart start → healthy, ms; null when the service never became healthy. */
  downtimeMs: number | null;
  /** Peak VRAM measured on the candidate, MiB, when measured. */
  measuredVramMb: number | null;
  /** What vLLM printed about its memory when the candidate started (absent when the log showed none). */
  measured?: StartMeasurement;
}

/** A canary under way: what it runs, under which lease, since when and in which mode. */
export interface RunningCanary {
  candidate: CandidateConfig;
  leaseId: string;
  startedAt: number;
  mode: CanaryMode;
  /** Filled in when the activity answered (it may not: a failure, a cancellation). */
  result: CanaryResult | null;
}

/** A canary that did not pass: why, and the downtime it cost before the restore. */
export interface FailedCanary {
  reason: string;
  canaryDowntimeMs: number;
}

/** The canary starts: one more attempt, the offered window is used. */
export function canaryStarted(
  state: EscalationState,
  run: RunningCanary,
  budgetLeftMs: number,
  now: number,
): void {
  state.attempts++;
  if (state.offered !== null) state.offered.canaryRan = true;
  const c = run.candidate;
  record(
    state,
    {
      code: 'canary_started',
      params: {
        candidateId: c.id,
        why: c.why,
        predictedDowntimeMs: c.predictedDowntimeMs,
        budgetLeftMs,
      },
    },
    now,
  );
}

/** The candidate passed: promoted, escalation and counts cleared. Returns the lease's release. */
export function canaryPromoted(
  state: EscalationState,
  run: RunningCanary,
  result: CanaryResult,
  now: number,
): LeaseRelease {
  const downtime = result.downtimeMs ?? now - run.startedAt;
  state.lastCanary = canaryRecord(run, 'promoted', result.reason, downtime, now);
  tally(state, run, 'promoted', downtime);
  disarm(state);
  state.symptoms.clearCounts();
  record(
    state,
    {
      code: 'candidate_promoted',
      params: { candidateId: run.candidate.id, result: result.reason, downtimeMs: downtime },
    },
    now,
  );
  return {
    leaseId: run.leaseId,
    downtimeMs: downtime,
    outcome: 'promoted',
    canary: audit(run, result.reason, downtime, null),
  };
}

/**
 * The candidate did not pass (failed, timed out, worker lost, cancelled): the restore comes next.
 * Unknown canary downtime is charged as the whole time the canary took.
 */
export function canaryFailed(
  state: EscalationState,
  run: RunningCanary,
  failure: string | null,
  now: number,
): FailedCanary {
  const reason = failure ?? run.result?.reason ?? 'unknown';
  record(state, { code: 'canary_failed', params: { reason } }, now);
  return { reason, canaryDowntimeMs: run.result?.downtimeMs ?? now - run.startedAt };
}

/** The previous config is back (after a failure or a cancellation). Returns the lease's release. */
export function canaryRestored(
  state: EscalationState,
  run: RunningCanary,
  failed: FailedCanary,
  restoreDowntimeMs: number,
  cancelled: boolean,
  now: number,
): LeaseRelease {
  const total = failed.canaryDowntimeMs + restoreDowntimeMs;
  state.lastCanary = canaryRecord(run, cancelled ? 'cancelled' : 'restored', failed.reason, total, now);
  tally(state, run, state.lastCanary.outcome, failed.canaryDowntimeMs);
  record(state, { code: 'previous_config_restored', params: { downtimeMs: restoreDowntimeMs } }, now);
  return {
    leaseId: run.leaseId,
    downtimeMs: total,
    outcome: 'restored',
    canary: audit(run, failed.reason, failed.canaryDowntimeMs, restoreDowntimeMs),
  };
}

/** The restore itself failed: the host latches until an operator acknowledges. Returns the release. */
export function restoreFailed(
  state: EscalationState,
  run: RunningCanary,
  failed: FailedCanary,
  failure: string,
  restoreDowntimeMs: number,
  host: string,
  now: number,
): LeaseRelease {
  const total = failed.canaryDowntimeMs + restoreDowntimeMs;
  state.lastCanary = canaryRecord(
    run,
    'restore_failed',
    `${failed.reason}; restore failed: ${failure}`,
    total,
    now,
  );
  tally(state, run, 'restore_failed', failed.canaryDowntimeMs);
  record(state, { code: 'restore_failed', params: { failure, host } }, now);
  return {
    leaseId: run.leaseId,
    downtimeMs: total,
    outcome: 'restore_failed',
    restoreFailure: failure,
    canary: audit(run, failed.reason, failed.canaryDowntimeMs, restoreDowntimeMs),
  };
}

/** Count the ended canary once, with the downtime of the canary itself (restore excluded). */
function tally(
  state: EscalationState,
  run: RunningCanary,
  outcome: CanaryRecord['outcome'],
  canaryDowntimeMs: number,
): void {
  bump(state.counters.canaryRuns, canaryRunKey(outcome, run.mode));
  observeDuration(state.counters.canaryDowntime, canaryDowntimeMs);
}

function canaryRecord(
  run: RunningCanary,
  outcome: CanaryRecord['outcome'],
  reason: string,
  downtimeMs: number,
  now: number,
): CanaryRecord {
  const prediction = predictionCheck(run.candidate, run.result?.measured);
  return {
    at: now,
    startedAt: run.startedAt,
    candidateId: run.candidate.id,
    changes: run.candidate.changes,
    outcome,
    reason,
    downtimeMs,
    measuredVramMb: run.result?.measuredVramMb ?? null,
    ...(prediction ? { prediction } : {}),
  };
}

function audit(
  run: RunningCanary,
  why: string,
  canaryDowntimeMs: number,
  restoreDowntimeMs: number | null,
): CanaryAudit {
  return {
    candidateId: run.candidate.id,
    changes: run.candidate.changes,
    reason: why,
    canaryDowntimeMs,
    restoreDowntimeMs,
    measuredVramMb: run.result?.measuredVramMb ?? null,
  };
}
