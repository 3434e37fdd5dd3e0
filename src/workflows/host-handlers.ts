// The messages a HostCoordinatorWorkflow answers: lease requests and releases (queued for the main loop,
// which handles them in order), the operator's pause, resume, acknowledge and rollback lease, and the
// `hostState` query. Every handler is guarded: no payload can fail a workflow task (handler-guard.ts).
import { condition, setHandler } from '@temporalio/workflow';
import type { LeaseRelease, LeaseRequest, OperatorLeaseRequest } from '../domain/host-ledger.js';
import { guardSignal, guardUpdate } from './handler-guard.js';
import type { LeaseDecision, OperatorAction } from './healing-messages.js';
import {
  type OperatorLeaseAnswer,
  acknowledgeRestoreFailureUpdate,
  acquireOperatorLeaseUpdate,
  hostStateQuery,
  leaseUpdate,
  pauseHostUpdate,
  releaseLeaseSignal,
  requestLeaseSignal,
  resumeHostUpdate,
} from './host-coordinator-messages.js';
import { grantOperatorLease } from './host-lease-steps.js';
import type { HostRun } from './host-run.js';
import {
  check,
  leaseReleaseSchema,
  leaseRequestSchema,
  operatorLeaseRequestSchema,
} from './message-schemas.js';
import { validateOperatorAction } from './operator-action.js';

const iso = (ms: number) => new Date(ms).toISOString();

export function registerHostHandlers(run: HostRun): void {
  registerLeaseMessages(run);
  registerOperatorHandlers(run);
  setHandler(hostStateQuery, () => run.view());
}

function registerLeaseMessages(run: HostRun): void {
  setHandler(
    requestLeaseSignal,
    guardSignal((payload: LeaseRequest) => {
      run.messagesThisRun++;
      run.refreshRules();
      const checked = check(leaseRequestSchema, payload);
      if (checked.ok) run.requests.push({ request: checked.value, via: 'signal' });
      else run.refuseMessage('lease request')(checked.error);
    }, run.refuseMessage('lease request')),
  );
  setHandler(
    leaseUpdate,
    guardUpdate(
      'lease',
      async (request: LeaseRequest): Promise<LeaseDecision> => {
        run.messagesThisRun++;
        run.refreshRules();
        // The loop decides requests in order, after releases and expiries; this waits for its answer.
        run.requests.push({ request, via: 'update' });
        await condition(() => run.updateAnswers.has(request.requestId));
        const answer = run.updateAnswers.get(request.requestId);
        run.updateAnswers.delete(request.requestId);
        if (answer === undefined) throw new Error('unreachable: the loop answered');
        return answer;
      },
      run.refuseMessage('lease request'),
    ),
    {
      validator: (request: LeaseRequest) => {
        const checked = check(leaseRequestSchema, request);
        if (!checked.ok) throw new TypeError(checked.error);
      },
    },
  );
  setHandler(
    releaseLeaseSignal,
    guardSignal((payload: LeaseRelease) => {
      run.messagesThisRun++;
      run.refreshRules();
      const checked = check(leaseReleaseSchema, payload);
      if (checked.ok) run.releases.push(checked.value);
      else run.refuseMessage('lease release')(checked.error);
    }, run.refuseMessage('lease release')),
  );
  setHandler(
    acquireOperatorLeaseUpdate,
    guardUpdate(
      'acquireOperatorLease',
      async (request: OperatorLeaseRequest): Promise<OperatorLeaseAnswer> => {
        run.refreshRules();
        await condition(() => run.policy !== undefined && run.window !== undefined);
        const { policy, window } = run;
        if (policy === undefined || window === undefined)
          throw new Error('unreachable: the policy is loaded');
        return grantOperatorLease(run, { policy, window }, request);
      },
      run.refuseMessage('acquireOperatorLease'),
    ),
    {
      validator: (request: OperatorLeaseRequest) => {
        const checked = check(operatorLeaseRequestSchema, request);
        if (!checked.ok) throw new TypeError(checked.error);
      },
    },
  );
}

function registerOperatorHandlers(run: HostRun): void {
  setHandler(
    pauseHostUpdate,
    guardUpdate(
      'pause',
      (action: OperatorAction) => {
        run.ledger = { ...run.ledger, paused: { at: Date.now(), by: action.by, reason: action.reason } };
        run.decide({ code: 'host_paused', params: { reason: action.reason } }, action.by);
        return run.view();
      },
      run.refuseMessage('pause'),
    ),
    { validator: validateOperatorAction },
  );
  setHandler(
    resumeHostUpdate,
    guardUpdate(
      'resume',
      (action: OperatorAction) => {
        const was = run.ledger.paused;
        run.ledger = { ...run.ledger, paused: null };
        run.decide(
          was
            ? { code: 'host_resumed', params: { reason: action.reason } }
            : { code: 'host_not_paused', params: {} },
          action.by,
        );
        return run.view();
      },
      run.refuseMessage('resume'),
    ),
    { validator: validateOperatorAction },
  );
  setHandler(
    acknowledgeRestoreFailureUpdate,
    guardUpdate(
      'acknowledgeRestoreFailure',
      (action: OperatorAction) => {
        const was = run.ledger.restoreFailure;
        run.ledger = { ...run.ledger, restoreFailure: null };
        run.decide(
          was
            ? {
                code: 'restore_failure_acknowledged',
                params: { reason: action.reason, kind: was.kind, failure: was.message },
              }
            : { code: 'no_restore_failure_latched', params: {} },
          action.by,
        );
        return { ...run.view(), acknowledged: was ? { ...was, at: iso(was.at) } : null };
      },
      run.refuseMessage('acknowledgeRestoreFailure'),
    ),
    { validator: validateOperatorAction },
  );
}
