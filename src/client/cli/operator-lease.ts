// The host's lease for an operator's change of the live service (healctl rollback): asked of the host
// coordinator like a canary's, so that the change never runs beside a canary and its downtime is charged to
// the budget. Update-with-start, so that it works before any canary ever asked for a lease.
import { randomUUID } from 'node:crypto';
import type { LeaseRelease } from '../../domain/host-ledger.js';
import { hostCoordinatorWorkflowId } from '../../domain/identifiers.js';
import {
  type OperatorLeaseAnswer,
  acquireOperatorLeaseUpdate,
  releaseLeaseSignal,
} from '../../workflows/host-coordinator-messages.js';
import { withClient } from './context.js';
import { CliError } from './errors.js';
import { coordinatorStart, rejected } from './workflows.js';

/** How long to wait for the coordinator (its worker runs on the GPU host). */
export const OPERATOR_LEASE_WAIT_MS = 15_000;

export class CoordinatorUnreachable extends Error {
  override name = 'CoordinatorUnreachable';
}

async function withDeadline<T>(host: string, what: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new CoordinatorUnreachable(
            `no answer from the coordinator of ${host} within ${OPERATOR_LEASE_WAIT_MS / 1000} s (is the worker of ${host} running?)`,
          ),
        ),
      OPERATOR_LEASE_WAIT_MS,
    );
  });
  try {
    return await Promise.race([what, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ask for the lease; the answer says granted or why not. Unreachable → {@link CoordinatorUnreachable}. */
export async function acquireOperatorLease(
  command: string,
  host: string,
  request: { by: string; reason: string; predictedDowntimeMs: number },
): Promise<OperatorLeaseAnswer> {
  const ask = withClient(async ({ client }) => {
    try {
      return await client.workflow.executeUpdateWithStart(acquireOperatorLeaseUpdate, {
        args: [{ requestId: randomUUID(), purpose: 'rollback', ...request }],
        startWorkflowOperation: coordinatorStart(host),
      });
    } catch (err) {
      return rejected(command, err);
    }
  });
  try {
    return await withDeadline(host, ask);
  } catch (err) {
    if (err instanceof CoordinatorUnreachable || err instanceof CliError || !(err instanceof Error))
      throw err;
    throw new CoordinatorUnreachable(`the coordinator of ${host} cannot be reached: ${err.message}`);
  }
}

/** Hand the lease back with the downtime it caused; a failure is reported, the lease then expires alone. */
export async function releaseOperatorLease(host: string, release: LeaseRelease): Promise<string | null> {
  try {
    await withDeadline(
      host,
      withClient(({ client }) =>
        client.workflow.getHandle(hostCoordinatorWorkflowId(host)).signal(releaseLeaseSignal, release),
      ),
    );
    return null;
  } catch (err) {
    return `the lease could not be handed back (${err instanceof Error ? err.message : String(err)}); the coordinator takes it back when it expires`;
  }
}
