// Sending a symptom to the HealingWorkflow of its (host, kind), starting the workflow on first use.
import { type Client, WithStartWorkflowOperation } from '@temporalio/client';
import {
  HOST_EXPECTED,
  healingWorkflowId,
  hostTaskQueue,
  isValidHost,
  isValidKind,
  kindProblem,
} from '../domain/identifiers.js';
import type { SymptomInput } from '../domain/symptom.js';
import {
  type RecordSymptomResult,
  recordSymptomUpdate,
  symptomSignal,
} from '../workflows/healing-messages.js';
import { HealingWorkflow } from '../workflows/healing-workflow.js';

/** A host or kind that cannot name a workflow: the input is wrong, sending it again will not help. */
export class SymptomAddressError extends TypeError {
  override name = 'SymptomAddressError';
}

/**
 * Where the symptom goes. The host and kind are checked here, before they become a workflow id and a
 * task queue: a payload the workflow would reject must not first create a workflow named after it.
 */
export function healingStartOptions(host: string, kind: unknown) {
  if (!isValidHost(host))
    throw new SymptomAddressError(`host ${JSON.stringify(host)}: expected ${HOST_EXPECTED}`);
  if (typeof kind !== 'string' || !isValidKind(kind))
    throw new SymptomAddressError(
      `kind ${JSON.stringify(kind) ?? String(kind)}: ${kindProblem(typeof kind === 'string' ? kind : '')}`,
    );
  return {
    workflowId: healingWorkflowId(host, kind),
    taskQueue: hostTaskQueue(host),
    args: [{ host, kind }] as [{ host: string; kind: string }],
    workflowIdConflictPolicy: 'USE_EXISTING' as const,
    staticSummary: `Heals ${kind} on GPU host ${host}`,
  };
}

/** Update-with-start: counts the symptom and returns the workflow's answer (count, flag, mode). */
export async function recordSymptom(
  client: Client,
  host: string,
  symptom: SymptomInput,
): Promise<RecordSymptomResult> {
  const startWorkflowOperation = new WithStartWorkflowOperation(
    HealingWorkflow,
    healingStartOptions(host, symptom.kind),
  );
  // Every delivery is an update of its own (the SDK keeps one update id across its own retries of this
  // call). The symptom's id is what makes a redelivery idempotent: the workflow answers it as a duplicate
  // with the count as it is now. Reusing the symptom id as the update id would make the server replay the
  // first delivery's answer instead, however stale.
  return client.workflow.executeUpdateWithStart(recordSymptomUpdate, {
    args: [symptom],
    startWorkflowOperation,
  });
}

/** Signal-with-start: fire and forget (a bad payload is recorded as a rejected decision). */
export async function signalSymptom(client: Client, host: string, symptom: SymptomInput): Promise<void> {
  const options = healingStartOptions(host, symptom.kind);
  await client.workflow.signalWithStart(HealingWorkflow, {
    ...options,
    signal: symptomSignal,
    signalArgs: [symptom],
  });
}
