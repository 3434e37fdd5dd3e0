// HealingWorkflow(host, kind): the durable state machine of one symptom kind on one GPU host. It counts
// symptoms over a rolling 24 h window, arms the escalation flag at the threshold, keeps a predictive
// recommendation up to date without downtime, and, while armed, sleeps until the maintenance window,
// asks the host coordinator for the canary lease and runs one canary: promote, or restore — always.
// This file is the loop of docs/workflows.md; the state and its transitions are pure (src/domain/healing-*),
// the messages are healing-handlers.ts, the activities' sequence healing-canary-run.ts.
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyLocalActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostActivities } from '../activities/types.js';
import {
  type EscalationRules,
  adviceOf,
  carriedState,
  lapseIfExpired,
  noteOffered,
  stateFromCarried,
} from '../domain/healing-escalation.js';
import { planAfterAttempt, planNext } from '../domain/healing-plan.js';
import { currentWindow, parseMaintenanceWindow } from '../domain/maintenance-window.js';
import { SymptomWindow } from '../domain/symptom-window.js';
import { attemptCanary, predict } from './healing-canary-run.js';
import { registerHealingHandlers } from './healing-handlers.js';
import { LeaseClient } from './healing-lease.js';
import type { HealingWorkflowInput } from './healing-messages.js';
import { HealingRun } from './healing-run.js';
import { PHASE_ATTRIBUTE_PATCH, SERVICE_IDENTITY_PATCH } from './patches.js';
import { readHealingInput } from './workflow-input.js';

const { loadHealingPolicy, phaseAttributeRegistered, serviceIdentity } = proxyLocalActivities<HostActivities>(
  {
    startToCloseTimeout: '10 seconds',
    retry: { maximumInterval: '30 seconds' },
  },
);

/** What the run asks its worker besides the policy: KlrPhase (0.4) and its service's identity (0.5). */
async function learnFromWorker(run: HealingRun): Promise<void> {
  if (patched(PHASE_ATTRIBUTE_PATCH)) run.phaseAttribute = await phaseAttributeRegistered();
  if (patched(SERVICE_IDENTITY_PATCH)) run.learnService(await serviceIdentity());
}

export async function HealingWorkflow(input: HealingWorkflowInput): Promise<void> {
  const workflowId = workflowInfo().workflowId;
  const reading = readHealingInput(input, workflowId);
  if (!reading.ok) throw ApplicationFailure.nonRetryable(reading.error, 'InvalidWorkflowInput');
  const { host, service, kind, carried } = reading.value;
  const run = new HealingRun(
    workflowId,
    host,
    kind,
    stateFromCarried(carried, new SymptomWindow(carried?.window)),
    service,
  );
  const { state } = run;
  for (const note of reading.notes) run.decide({ code: 'start_input_refused', params: { note } });
  const lease = new LeaseClient(run);
  registerHealingHandlers(run, lease);

  const policy = await loadHealingPolicy();
  await learnFromWorker(run);
  const window = parseMaintenanceWindow(policy.maintenanceWindow, policy.maintenanceTimeZone);
  const rules: EscalationRules = { kind, policy, window, safeRules: run.safeRules };
  run.rules = rules;

  for (;;) {
    run.refreshRules();
    const now = Date.now();
    lapseIfExpired(state, rules, now);
    noteOffered(state, rules, currentWindow(window, now));

    if (run.shouldContinueAsNew()) {
      await condition(allHandlersFinished);
      run.decide({
        code: 'continued_as_new',
        params: {
          historyLength: workflowInfo().historyLength,
          messages: run.messagesThisRun,
          nextRun: state.runs + 1,
        },
      });
      await continueAsNew<typeof HealingWorkflow>({
        host,
        ...(service === null ? {} : { service }),
        kind,
        carried: carriedState(state, run.safeRules),
      });
    }

    const step = planNext(state, rules, now, {
      phase: run.phase,
      runStartedAt: workflowInfo().runStartTime.getTime(),
      announcedOpening: run.announcedOpening,
    });
    switch (step.type) {
      case 'predict':
        run.setPhase(step.phase, step.next);
        await predict(run, 'new symptom');
        break;
      case 'wait':
        await run.wait(step);
        break;
      case 'end':
        await condition(allHandlersFinished);
        if (state.symptoms.count(Date.now()) === 0) {
          run.decide({ code: 'workflow_ended', params: { kind, advice: adviceOf(state, rules) ?? '' } });
          run.setPhase('watching', 'ended: it starts again with the next symptom of this kind');
          run.reportMetrics(true);
          return;
        }
        break;
      case 'attempt': {
        const retryAt = await attemptCanary(run, lease, rules, step.occurrence);
        const after = planAfterAttempt(state, rules, retryAt, Date.now());
        if (after?.type === 'wait') await run.wait(after);
        break;
      }
    }
  }
}
