// The canary lease as a HealingWorkflow asks for it. Since 0.3 one update-with-start on the host
// coordinator (the acquireCanaryLease activity) whose result is the decision; a retry carries the same
// request id (the update id), and a holder that asks again while it holds the lease gives that unused lease
// up. Runs that 0.2 started replay its exchange: the request by signal-with-start, the answer by the
// `leaseDecision` signal, and a grant that comes after the run stopped waiting handed straight back. The
// release is a signal.
import {
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  uuid4,
} from '@temporalio/workflow';
import type { CandidateConfig, HostActivities } from '../activities/types.js';
import type { LeaseAsked } from '../domain/healing-attempt.js';
import type { LeaseRelease } from '../domain/host-ledger.js';
import { hostCoordinatorWorkflowId } from '../domain/identifiers.js';
import { describeFailure } from './failure-text.js';
import type { LeaseDecision } from './healing-messages.js';
import type { HealingRun } from './healing-run.js';
import { releaseLeaseSignal } from './host-coordinator-messages.js';
import { check, leaseDecisionSchema } from './message-schemas.js';
import { LEASE_UPDATE_PATCH } from './patches.js';

const { requestCanaryLease } = proxyActivities<HostActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 10 },
});

// The update waits while the coordinator finishes what came before it (a release, an abandoned canary's
// restore): each try waits up to a minute, and a retry rejoins the same update.
const { acquireCanaryLease } = proxyActivities<HostActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 10 },
});

/** 0.2: how long a run waited for the `leaseDecision` signal. */
const LEASE_ANSWER_TIMEOUT_MS = 2 * 60_000;
/** How many abandoned requests are remembered, so that only a late grant of ours is handed back. */
const ABANDONED_KEPT = 20;

export class LeaseClient {
  private readonly answers = new Map<string, LeaseDecision>();
  private awaitedRequestId: string | null = null;
  /** Requests this run stopped waiting for: only a late grant of one of them is handed back. */
  private readonly abandoned: string[] = [];

  constructor(private readonly run: HealingRun) {}

  /** Ask the coordinator: its answer, or none (and why, when the request failed). */
  async request(candidate: CandidateConfig): Promise<LeaseAsked> {
    const { host, kind, workflowId } = this.run;
    const requestId = uuid4();
    const askedAt = Date.now();
    if (!patched(LEASE_UPDATE_PATCH)) {
      const answer = await this.requestBySignal(candidate, requestId);
      return answer !== null ? { answer } : { answer: null, waitedMs: LEASE_ANSWER_TIMEOUT_MS };
    }
    const { predictedDowntimeMs } = candidate;
    try {
      const answer = await acquireCanaryLease.executeWithOptions(
        { summary: `ask ${host}'s coordinator for the canary lease (${candidate.id})` },
        [
          {
            host,
            requestId,
            holderWorkflowId: workflowId,
            // 0.5: the lease names the service (null: the worker names its legacy service).
            service: this.run.serviceName,
            kind,
            predictedDowntimeMs,
          },
        ],
      );
      this.noteFigures(answer);
      return { answer };
    } catch (err) {
      if (isCancellation(err)) throw err;
      return { answer: null, waitedMs: Date.now() - askedAt, failure: describeFailure(err) };
    }
  }

  /** 0.2's exchange, for runs whose history has it. */
  private async requestBySignal(
    candidate: CandidateConfig,
    requestId: string,
  ): Promise<LeaseDecision | null> {
    const { host, kind, workflowId } = this.run;
    this.awaitedRequestId = requestId;
    try {
      await requestCanaryLease({
        host,
        requestId,
        holderWorkflowId: workflowId,
        kind,
        predictedDowntimeMs: candidate.predictedDowntimeMs,
      });
      await condition(() => this.answers.has(requestId), LEASE_ANSWER_TIMEOUT_MS);
      return this.answers.get(requestId) ?? null;
    } finally {
      this.awaitedRequestId = null;
      if (!this.answers.has(requestId)) {
        this.abandoned.push(requestId);
        if (this.abandoned.length > ABANDONED_KEPT) this.abandoned.shift();
      }
      this.answers.delete(requestId);
    }
  }

  /** Hand the lease back to the coordinator; nothing may cancel that. */
  async release(release: LeaseRelease): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      try {
        await getExternalWorkflowHandle(hostCoordinatorWorkflowId(this.run.host)).signal(
          releaseLeaseSignal,
          release,
        );
      } catch (err) {
        this.run.decide({ code: 'lease_not_released', params: { failure: describeFailure(err) } });
      }
    });
  }

  /** The `leaseDecision` signal: the coordinator's answer (or a forgery, which must not release anything). */
  async onAnswer(payload: LeaseDecision): Promise<void> {
    const { run } = this;
    const checked = check(leaseDecisionSchema, payload);
    if (!checked.ok) {
      run.decide({ code: 'lease_answer_rejected', params: { problem: checked.error } });
      return;
    }
    const decision = checked.value;
    this.noteFigures(decision);
    if (decision.requestId === this.awaitedRequestId) {
      this.answers.set(decision.requestId, decision);
      return;
    }
    // An answer that comes after we stopped waiting: a grant nobody will use is handed straight back —
    // but only for a request of ours, so that a forged answer cannot release another holder's lease.
    const ours = !run.safeRules || this.abandoned.includes(decision.requestId);
    if (decision.granted && decision.leaseId && ours) {
      run.decide({ code: 'late_lease_returned', params: { requestId: decision.requestId } });
      await this.release({ leaseId: decision.leaseId, downtimeMs: 0, outcome: 'not_started' });
    }
  }

  /** The host's figures as the coordinator's answer gave them, for the state view. */
  private noteFigures(decision: LeaseDecision): void {
    this.run.state.hostFigures = {
      budgetLeftMs: decision.budgetLeftMs,
      budgetTotalMs: decision.budgetTotalMs,
      cooldownUntil: decision.cooldownUntil,
      asOf: Date.now(),
    };
  }
}
