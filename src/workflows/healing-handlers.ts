// The messages a HealingWorkflow answers: symptoms (signal and update), the operator's clear and escalate,
// the coordinator's lease answers, and the `state` query. Every handler is guarded: no payload can fail a
// workflow task (handler-guard.ts). A handler that changes what the main loop should do sets `run.wake`.
import { ApplicationFailure, setHandler } from '@temporalio/workflow';
import { formatDuration } from '../domain/duration-text.js';
import {
  clearEscalation,
  countSymptom,
  flagExpiresAt,
  forceEscalation,
  type EscalationRules,
} from '../domain/healing-escalation.js';
import {
  MAX_FUTURE_SKEW_MS,
  type Symptom,
  type SymptomInput,
  eventTimeMs,
  parseSymptom,
} from '../domain/symptom.js';
import { guardSignal, guardUpdate } from './handler-guard.js';
import {
  type LeaseDecision,
  type OperatorAction,
  type RecordSymptomResult,
  clearEscalationUpdate,
  forceEscalationUpdate,
  leaseDecisionSignal,
  recordSymptomUpdate,
  stateQuery,
  symptomSignal,
} from './healing-messages.js';
import type { LeaseClient } from './healing-lease.js';
import type { HealingRun } from './healing-run.js';
import { validateOperatorAction } from './operator-action.js';
import { undecodableReason } from './payload-converter.js';

export function registerHealingHandlers(run: HealingRun, lease: LeaseClient): void {
  registerSymptomHandlers(run);
  registerOperatorHandlers(run);
  setHandler(
    leaseDecisionSignal,
    guardSignal(async (payload: LeaseDecision) => {
      run.refreshRules();
      await lease.onAnswer(payload);
    }, run.refuseMessage('leaseDecision')),
  );
  setHandler(stateQuery, () => run.view());
}

/** Why this payload cannot be counted, or null; the same checks for the signal and the update. */
function rejection(run: HealingRun, payload: unknown): string | null {
  const undecodable = undecodableReason(payload);
  if (undecodable !== null) return `payload: ${undecodable}`;
  const parsed = parseSymptom(payload);
  if (!parsed.ok) return parsed.error;
  if (parsed.symptom.kind !== run.kind) {
    return `kind: this workflow heals "${run.kind}" on ${run.host}; send "${parsed.symptom.kind}" to the workflow of that kind`;
  }
  const at = eventTimeMs(parsed.symptom, Date.now());
  if (at > Date.now() + MAX_FUTURE_SKEW_MS) {
    return `eventTime: ${new Date(at).toISOString()} is more than ${formatDuration(MAX_FUTURE_SKEW_MS)} in the future; check the sender's clock`;
  }
  return null;
}

function accept(run: HealingRun, active: EscalationRules, symptom: Symptom): RecordSymptomResult {
  const { state } = run;
  const now = Date.now();
  const counted = countSymptom(state, active, symptom, now);
  if (counted.wake) run.wake = true;
  run.publish();
  const expiresAt = flagExpiresAt(state, active);
  return {
    outcome: counted.outcome,
    count24h: state.symptoms.count(now),
    threshold: active.policy.threshold24h,
    armed: state.armedAt !== null,
    flagExpiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString(),
    mode: run.mode(),
  };
}

function registerSymptomHandlers(run: HealingRun): void {
  setHandler(
    symptomSignal,
    guardSignal(async (payload: SymptomInput) => {
      run.messagesThisRun++;
      run.refreshRules();
      // A signal cannot be answered: a bad payload is recorded, never thrown (that would fail the task).
      const problem = rejection(run, payload);
      if (problem !== null) {
        run.refuseMessage('symptom')(problem);
        return;
      }
      const active = await run.activeRules();
      const parsed = parseSymptom(payload);
      if (parsed.ok) accept(run, active, parsed.symptom);
    }, run.refuseMessage('symptom')),
  );

  setHandler(
    recordSymptomUpdate,
    guardUpdate(
      'recordSymptom',
      async (payload: SymptomInput) => {
        run.messagesThisRun++;
        run.refreshRules();
        const active = await run.activeRules();
        const parsed = parseSymptom(payload);
        if (!parsed.ok) throw new TypeError(parsed.error); // unreachable: the validator ran first
        return accept(run, active, parsed.symptom);
      },
      run.refuseMessage('symptom'),
    ),
    {
      validator: (payload: SymptomInput) => {
        const problem = rejection(run, payload);
        if (problem !== null) throw new TypeError(problem);
      },
    },
  );
}

function registerOperatorHandlers(run: HealingRun): void {
  setHandler(
    clearEscalationUpdate,
    guardUpdate(
      'clearEscalation',
      async (request: OperatorAction) => {
        run.refreshRules();
        await run.activeRules();
        clearEscalation(run.state, request, Date.now());
        run.wake = true;
        run.publish();
        return run.view();
      },
      run.refuseMessage('clearEscalation'),
    ),
    { validator: validateOperatorAction },
  );

  setHandler(
    forceEscalationUpdate,
    guardUpdate(
      'forceEscalation',
      async (request: OperatorAction) => {
        run.refreshRules();
        const refusal = forceEscalation(run.state, await run.activeRules(), request, Date.now());
        if (refusal !== null) throw ApplicationFailure.nonRetryable(refusal, 'KindCannotAct');
        run.wake = true;
        run.publish();
        return run.view();
      },
      run.refuseMessage('forceEscalation'),
    ),
    { validator: validateOperatorAction },
  );
}
