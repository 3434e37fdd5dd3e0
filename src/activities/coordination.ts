// Activities that connect the workflows to each other and to the host's own settings and records.
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { log } from '@temporalio/activity';
import { type Client, WithStartWorkflowOperation } from '@temporalio/client';
import { hostCoordinatorWorkflowId, hostTaskQueue } from '../domain/identifiers.js';
import type { HealingPolicy } from '../domain/policy.js';
import { leaseUpdate, requestLeaseSignal } from '../workflows/host-coordinator-messages.js';
import { HostCoordinatorWorkflow } from '../workflows/host-coordinator-workflow.js';
import { PHASE_ATTRIBUTE, SERVICE_ATTRIBUTE } from '../workflows/search-attributes.js';
import { attributeCheck } from '../temporal/registered-attributes.js';
import { boundedClientCall } from './bounded-client-call.js';
import { createRecoverAbandonedLease, holderBusy } from './recover-lease.js';
import type { BudgetReport, CoordinatorLeaseRequest, HostActivities } from './types.js';

/** How long one try of acquireCanaryLease waits for the coordinator (its start-to-close is 1 minute). */
const LEASE_TRY_MS = 50_000;

export interface CoordinationDeps {
  client: Client;
  policy: HealingPolicy;
  /** Directory of the host's audit log (JSON Lines). */
  auditDir: string;
  /** The host's restore (the GPU side's restoreService), for the recovery of an abandoned canary. */
  restoreService: HostActivities['restoreService'];
  /** The name of the host's legacy service (ids without a service), null when it has none. */
  legacyService?: string | null;
}

export function createCoordinationActivities(
  deps: CoordinationDeps,
): Pick<
  HostActivities,
  | 'loadHealingPolicy'
  | 'phaseAttributeRegistered'
  | 'serviceIdentity'
  | 'acquireCanaryLease'
  | 'requestCanaryLease'
  | 'reportBudget'
  | 'recoverAbandonedLease'
> {
  const phaseRegistered = attributeCheck(deps.client, PHASE_ATTRIBUTE.name, (err) => {
    log.warn('cannot list the namespace search attributes; KlrPhase is not set', { error: String(err) });
  });
  const serviceRegistered = attributeCheck(deps.client, SERVICE_ATTRIBUTE.name, (err) => {
    log.warn('cannot list the namespace search attributes; KlrService is not set', { error: String(err) });
  });
  return {
    recoverAbandonedLease: createRecoverAbandonedLease({
      holderBusy: (workflowId) => holderBusy(deps.client, workflowId),
      restoreService: deps.restoreService,
    }),

    async loadHealingPolicy() {
      return deps.policy;
    },

    phaseAttributeRegistered: phaseRegistered,

    async serviceIdentity() {
      return { legacyService: deps.legacyService ?? null, serviceAttribute: await serviceRegistered() };
    },

    async acquireCanaryLease(request: CoordinatorLeaseRequest) {
      const { host, ...asked } = request;
      // A legacy workflow that has not learnt its service's name: the lease names it all the same.
      const lease =
        asked.service === null && deps.legacyService ? { ...asked, service: deps.legacyService } : asked;
      // Update-with-start: the coordinator of a host exists from its first lease request on. The request id
      // is the update id, so a retry of this activity gets the answer the first try got (the server keeps
      // it for the run; a run continues as new only with no lease held and nothing asked). Each try ends
      // before its 1-minute timeout, or at once when cancelled, so the next try rejoins the same update.
      return boundedClientCall(deps.client, LEASE_TRY_MS, () =>
        deps.client.workflow.executeUpdateWithStart(leaseUpdate, {
          args: [lease],
          updateId: lease.requestId,
          startWorkflowOperation: new WithStartWorkflowOperation(HostCoordinatorWorkflow, {
            workflowId: hostCoordinatorWorkflowId(host),
            taskQueue: hostTaskQueue(host),
            args: [{ host }],
            workflowIdConflictPolicy: 'USE_EXISTING',
            staticSummary: `Canary lease, budget and cooldown of GPU host ${host}`,
          }),
        }),
      );
    },

    async requestCanaryLease(request: CoordinatorLeaseRequest) {
      const { host, ...lease } = request;
      // Signal-with-start: the coordinator of a host exists from its first lease request on; a retry of
      // this activity re-sends the same request id, which the coordinator answers once.
      await deps.client.workflow.signalWithStart(HostCoordinatorWorkflow, {
        workflowId: hostCoordinatorWorkflowId(host),
        taskQueue: hostTaskQueue(host),
        args: [{ host }],
        signal: requestLeaseSignal,
        signalArgs: [lease],
        staticSummary: `Canary lease, budget and cooldown of GPU host ${host}`,
      });
    },

    async reportBudget(report: BudgetReport) {
      await mkdir(deps.auditDir, { recursive: true });
      await appendFile(join(deps.auditDir, `budget-${report.host}.jsonl`), JSON.stringify(report) + '\n', {
        mode: 0o640,
      });
    },
  };
}
