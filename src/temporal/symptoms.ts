// Sending a symptom to the HealingWorkflow of its (host, service, kind), starting the workflow on first use.
// The service is null for the host's legacy service (ids without a service, docs/upgrading.md).
import { type Client, WithStartWorkflowOperation } from '@temporalio/client';
import {
  HOST_EXPECTED,
  healingWorkflowId,
  hostTaskQueue,
  SERVICE_EXPECTED,
  isValidHost,
  isValidKind,
  isValidService,
  kindProblem,
} from '../domain/identifiers.js';
import type { SymptomInput } from '../domain/symptom.js';
import {
  type RecordSymptomResult,
  recordSymptomUpdate,
  symptomSignal,
} from '../workflows/healing-messages.js';
import { HealingWorkflow } from '../workflows/healing-workflow.js';

/** A host, service or kind that cannot name a workflow: the input is wrong, sending it again will not help. */
export class SymptomAddressError extends TypeError {
  override name = 'SymptomAddressError';
}

/**
 * Where the symptom goes. The host and kind are checked here, before they become a workflow id and a
 * task queue: a payload the workflow would reject must not first create a workflow named after it.
 */
export function healingStartOptions(host: string, kind: unknown, service: string | null = null) {
  if (!isValidHost(host))
    throw new SymptomAddressError(`host ${JSON.stringify(host)}: expected ${HOST_EXPECTED}`);
  if (service !== null && !isValidService(service))
    throw new SymptomAddressError(
      `service ${JSON.stringify(service) ?? String(service)}: expected ${SERVICE_EXPECTED}`,
    );
  if (typeof kind !== 'string' || !isValidKind(kind))
    throw new SymptomAddressError(
      `kind ${JSON.stringify(kind) ?? String(kind)}: ${kindProblem(typeof kind === 'string' ? kind : '')}`,
    );
  return {
    workflowId: healingWorkflowId(host, kind, service),
    taskQueue: hostTaskQueue(host),
    args: [service === null ? { host, kind } : { host, service, kind }] as [
      { host: string; kind: string; service?: string },
    ],
    workflowIdConflictPolicy: 'USE_EXISTING' as const,
    staticSummary: `Heals ${kind} on GPU host ${host}${service === null ? '' : `, service ${service}`}`,
  };
}

/**
 * An update-with-start can reach a run in the instant it continues as new: the run closes without taking
 * the update, and the server answers NOT_FOUND (the update was not applied). Sent again, it reaches the new
 * run. Only a symptom with an id is sent again: its id keeps a redelivery from counting twice, should the
 * first one have been applied after all (a NOT_FOUND while waiting for the answer).
 */
const RUN_CLOSED_ATTEMPTS = 3;
const GRPC_NOT_FOUND = 5;

function runClosedUnderUpdate(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    if ((e as { code?: unknown }).code === GRPC_NOT_FOUND) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Update-with-start: counts the symptom and returns the workflow's answer (count, flag, mode). */
export async function recordSymptom(
  client: Client,
  host: string,
  symptom: SymptomInput,
  service: string | null = null,
): Promise<RecordSymptomResult> {
  const options = healingStartOptions(host, symptom.kind, service);
  for (let attempt = 1; ; attempt++) {
    // Every delivery is an update of its own (the SDK keeps one update id across its own retries of this
    // call). The symptom's id is what makes a redelivery idempotent: the workflow answers it as a
    // duplicate with the count as it is now. Reusing the symptom id as the update id would make the server
    // replay the first delivery's answer instead, however stale.
    try {
      return await client.workflow.executeUpdateWithStart(recordSymptomUpdate, {
        args: [symptom],
        startWorkflowOperation: new WithStartWorkflowOperation(HealingWorkflow, options),
      });
    } catch (err) {
      if (attempt >= RUN_CLOSED_ATTEMPTS || symptom.id === undefined || !runClosedUnderUpdate(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }
}

/** Signal-with-start: fire and forget (a bad payload is recorded as a rejected decision). */
export async function signalSymptom(
  client: Client,
  host: string,
  symptom: SymptomInput,
  service: string | null = null,
): Promise<void> {
  const options = healingStartOptions(host, symptom.kind, service);
  await client.workflow.signalWithStart(HealingWorkflow, {
    ...options,
    signal: symptomSignal,
    signalArgs: [symptom],
  });
}
