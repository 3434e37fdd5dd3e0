// recoverAbandonedLease: the host coordinator's answer to a canary lease that was never released. Normally
// the holder (the HealingWorkflow) restores a failed canary itself, whatever happens — but a workflow that
// is terminated (by an operator, or by the server when a flood of messages pushes its history past its
// limit) in the middle of a canary never gets to. When such a lease expires, the coordinator runs this:
// if the holder still has its canary or restore activity pending it is left alone (it will restore);
// otherwise the service is restored from the lease's backup, exactly as restoreService does — except that
// a candidate the canary had already promoted on disk is kept.
import type { Client } from '@temporalio/client';
import { parseHealingWorkflowId } from '../domain/identifiers.js';
import type { RecoverLeaseInput, RecoverLeaseResult, RestoreInput, RestoreResult } from './types.js';

/** The activities a holder runs while it changes the service: while one is pending, it is alive. */
const CHANGING_ACTIVITIES = new Set(['runCanary', 'restoreService']);

/** Whether the holder's current run still has a canary or a restore in flight (null: no such workflow). */
export async function holderBusy(client: Client, workflowId: string): Promise<string | null> {
  try {
    const description = await client.workflow.getHandle(workflowId).describe();
    if (description.status.name !== 'RUNNING') return null;
    const pending = (description.raw.pendingActivities ?? [])
      .map((a) => a.activityType?.name ?? '')
      .filter((name) => CHANGING_ACTIVITIES.has(name));
    return pending.length > 0 ? `${workflowId} still runs ${pending.join(', ')}` : null;
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return null;
    throw err;
  }
}

export function createRecoverAbandonedLease(deps: {
  holderBusy: (workflowId: string) => Promise<string | null>;
  restoreService: (input: RestoreInput) => Promise<RestoreResult>;
}): (input: RecoverLeaseInput) => Promise<RecoverLeaseResult> {
  return async function recoverAbandonedLease(input) {
    const busy = await deps.holderBusy(input.holderWorkflowId);
    if (busy !== null) return { action: 'holder_busy', detail: busy };
    // The holder's id names the service the canary changed (a legacy id: the legacy service).
    const service = parseHealingWorkflowId(input.holderWorkflowId)?.service ?? null;
    const restored = await deps.restoreService({
      host: input.host,
      kind: input.kind,
      ...(service === null ? {} : { service }),
      leaseId: input.leaseId,
      reason: `lease ${input.leaseId} expired and its holder ${input.holderWorkflowId} no longer runs the canary`,
      keepPromotion: true,
    });
    return restored.keptPromotion
      ? { action: 'kept_promotion' }
      : { action: 'restored', downtimeMs: restored.downtimeMs };
  };
}
