// What a HealingWorkflow does with activities: predict (measure VRAM, rank candidates; no downtime) and, in
// the maintenance window, re-check, take the host's lease and run one canary — promote, or restore, always.
// The state changes are the pure transitions of healing-canary.ts; this file only sequences the calls.
import {
  ActivityCancellationType,
  CancellationScope,
  isCancellation,
  proxyActivities,
} from '@temporalio/workflow';
import type { CandidateConfig, HostActivities, Recommendation, VramSnapshot } from '../activities/types.js';
import { VRAM_UNAVAILABLE } from '../domain/failure-types.js';
import { formatDuration } from '../domain/duration-text.js';
import {
  type RunningCanary,
  canaryFailed,
  canaryPromoted,
  canaryRestored,
  canaryStarted,
  restoreFailed,
} from '../domain/healing-canary.js';
import { attemptStep, leaseStep } from '../domain/healing-attempt.js';
import type { EscalationRules } from '../domain/healing-escalation.js';
import type { LeaseRelease } from '../domain/host-ledger.js';
import type { WindowOccurrence } from '../domain/maintenance-window.js';
import type { HealingPolicy } from '../domain/policy.js';
import { RESTORE_ACTIVITY_OPTIONS } from './activity-options.js';
import { describeFailure } from './failure-text.js';
import type { LeaseClient } from './healing-lease.js';
import type { HealingRun } from './healing-run.js';

// Measuring and predicting cost no downtime: retry briefly, but not where the host has no GPU at all.
const { measureVram, predictCandidates } = proxyActivities<HostActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumAttempts: 3, nonRetryableErrorTypes: [VRAM_UNAVAILABLE] },
});

const { restoreService } = proxyActivities<HostActivities>(RESTORE_ACTIVITY_OPTIONS);

/** The canary is not idempotent: never retried; a failure of any kind leads to the restore. */
function canaryActivity(healthDeadlineMs: number, soakMs: number, summary: string) {
  return proxyActivities<HostActivities>({
    summary,
    startToCloseTimeout: healthDeadlineMs + soakMs + 2 * 60_000,
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: 1 },
    // The restore must not start while the canary still touches the service.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  }).runCanary;
}

/** The activities' service: the id's (absent for a legacy id, as the inputs of 0.4 were). */
const serviceRef = (run: HealingRun) => (run.service === null ? {} : { service: run.service });
/** " (service x)" in summaries, where the run knows its service's name. */
const onService = (run: HealingRun) => (run.serviceName === null ? '' : ` (service ${run.serviceName})`);

/** Measure VRAM and rank candidate configs: no downtime, so it runs on new symptoms in any mode. */
export async function predict(run: HealingRun, why: string): Promise<Recommendation | null> {
  const { state, host, kind, service } = run;
  state.lastPredictedAt = Date.now();
  state.symptomsSincePrediction = false;
  let vram: VramSnapshot | null = null;
  try {
    // A legacy run passes nothing, as 0.4 did: the worker measures its legacy service (all GPUs by default).
    vram = await measureVram.executeWithOptions(
      { summary: `measure VRAM on ${host}${onService(run)}` },
      service === null ? [] : [{ service }],
    );
  } catch (err) {
    run.decide({ code: 'vram_not_measured', params: { failure: describeFailure(err) } });
  }
  try {
    const rec = await predictCandidates.executeWithOptions(
      { summary: `predict the ${kind} configs that fit on ${host}${onService(run)}` },
      [{ host, kind, ...serviceRef(run), vram, symptom: state.lastSymptomDetails ?? null }],
    );
    state.recommendation = rec;
    const best = rec.candidates.find((c) => c.fits);
    run.decide({
      code: 'recommendation_updated',
      params: { why, best: best ? { id: best.id, why: best.why } : null, basis: rec.basis },
    });
    return rec;
  } catch (err) {
    run.decide({ code: 'no_recommendation', params: { failure: describeFailure(err) } });
    return null;
  }
}

/**
 * The window is open: re-check everything with fresh measurements, then ask for the lease.
 * Returns when to look again within this window, or null to wait for the next window.
 */
export async function attemptCanary(
  run: HealingRun,
  lease: LeaseClient,
  rules: EscalationRules,
  occurrence: WindowOccurrence,
): Promise<number | null> {
  const { state } = run;
  run.setPhase(
    'requesting_lease',
    'window open: measuring, predicting and asking the host for the canary lease',
  );
  const rec = await predict(run, 'maintenance window open');
  const attempt = attemptStep(state, rules, rec, occurrence, Date.now());
  if (attempt.type === 'stop') return attempt.retryAt;
  const next = leaseStep(state, rules, await lease.request(attempt.candidate), occurrence, Date.now());
  if (next.type === 'stop') {
    if (next.giveBack !== null)
      await lease.release({ leaseId: next.giveBack, downtimeMs: 0, outcome: 'not_started' });
    return next.retryAt;
  }
  await runLeasedCanary(run, lease, rules.policy, attempt.candidate, next);
  return null;
}

/** Run the canary under a granted lease: promote, or restore whatever happened, then release. */
async function runLeasedCanary(
  run: HealingRun,
  lease: LeaseClient,
  policy: HealingPolicy,
  candidate: CandidateConfig,
  granted: { leaseId: string; budgetLeftMs: number },
): Promise<void> {
  const { state, host, kind } = run;
  const soakMs = policy.soakSeconds * 1000;
  const canary: RunningCanary = {
    candidate,
    leaseId: granted.leaseId,
    startedAt: Date.now(),
    mode: run.mode(),
    result: null,
  };
  canaryStarted(state, canary, granted.budgetLeftMs, canary.startedAt);
  run.setPhase(
    'canary_running',
    `canary ${candidate.id} running (attempt ${state.attempts} of ${policy.maxAttempts}, health deadline ${formatDuration(granted.budgetLeftMs)})`,
  );

  let failure: string | null = null;
  let cancellation: Error | null = null;
  try {
    const healthDeadlineMs = granted.budgetLeftMs;
    canary.result = await canaryActivity(
      healthDeadlineMs,
      soakMs,
      `canary ${candidate.id} on ${host}${onService(run)}`,
    )({ host, kind, ...serviceRef(run), leaseId: granted.leaseId, candidate, healthDeadlineMs, soakMs });
  } catch (err) {
    if (isCancellation(err)) cancellation = err as Error;
    failure = isCancellation(err) ? 'workflow cancelled during the canary' : describeFailure(err);
  }

  if (canary.result?.outcome === 'passed' && cancellation === null) {
    await lease.release(canaryPromoted(state, canary, canary.result, Date.now()));
    return;
  }
  // The old config goes back, always, and nothing may cancel that.
  await CancellationScope.nonCancellable(() =>
    restoreAfter(run, lease, canary, failure, cancellation !== null),
  );
  if (cancellation !== null) throw cancellation;
}

/** Restore the previous config after a canary that did not pass, then release the lease. */
async function restoreAfter(
  run: HealingRun,
  lease: LeaseClient,
  canary: RunningCanary,
  failure: string | null,
  cancelled: boolean,
): Promise<void> {
  const { state, host, kind } = run;
  const failed = canaryFailed(state, canary, failure, Date.now());
  run.setPhase('restoring', `restoring the previous config after: ${failed.reason}`);
  const restoreStarted = Date.now();
  let release: LeaseRelease;
  try {
    const restored = await restoreService.executeWithOptions(
      { summary: `restore ${host}${onService(run)}'s config from before canary ${canary.candidate.id}` },
      [{ host, kind, ...serviceRef(run), leaseId: canary.leaseId, reason: failed.reason }],
    );
    release = canaryRestored(state, canary, failed, restored.downtimeMs, cancelled, Date.now());
  } catch (err) {
    const now = Date.now();
    release = restoreFailed(state, canary, failed, describeFailure(err), now - restoreStarted, host, now);
  }
  await lease.release(release);
}
