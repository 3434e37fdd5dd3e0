// The workflows healctl talks to, by their documented ids, with the failures people hit turned into
// messages that say what to do: a workflow that does not exist, an update its validator rejected.
import { queryWhenNotBusy } from '../../temporal/query-busy.js';
import {
  type Client,
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import {
  healingWorkflowId,
  hostCoordinatorWorkflowId,
  hostTaskQueue,
  parseHealingWorkflowId,
} from '../../domain/identifiers.js';
import { type HealingStateView, stateQuery } from '../../workflows/healing-messages.js';
import { type HostStateView, hostStateQuery } from '../../workflows/host-coordinator-messages.js';
import { HostCoordinatorWorkflow } from '../../workflows/host-coordinator-workflow.js';
import {
  ARMED_ATTRIBUTE,
  HOST_ATTRIBUTE,
  KIND_ATTRIBUTE,
  MODE_ATTRIBUTE,
  SERVICE_ATTRIBUTE,
} from '../../workflows/search-attributes.js';
import { CliError } from './errors.js';

/** `service`: the id's service part (null: the legacy id kloros-healing/<host>/<kind>). */
export function healingNotFound(
  command: string,
  host: string,
  kind: string,
  service: string | null = null,
): CliError {
  const flag = service === null ? '' : ` --service ${service}`;
  return new CliError(
    `healctl ${command}: no healing workflow ${healingWorkflowId(host, kind, service)} — nothing has been recorded for ${kind} on ${host}${service === null ? '' : ` (service ${service})`}. ` +
      `Record a symptom with \`healctl symptom ${kind} --host ${host}${flag}\`, start it with \`healctl start ${kind} --host ${host}${flag}\`, or see \`healctl list --all-hosts\``,
  );
}

/**
 * How long a query may take. A query is answered by the host's worker, so with no worker polling
 * `kloros-healing.<host>` the server would hold it until its own timeout: say so instead.
 */
export const QUERY_TIMEOUT_MS = 10_000;

export function noWorkerAnswered(command: string, host: string, workflowId: string): CliError {
  return new CliError(
    `healctl ${command}: ${workflowId} did not answer within ${QUERY_TIMEOUT_MS / 1000} s — is a worker polling task queue ${hostTaskQueue(host)}? ` +
      `Start it on the GPU host with \`healctl worker\` (or the systemd unit), or locally with \`npm start\``,
  );
}

/** Run a query under {@link QUERY_TIMEOUT_MS}; a timeout becomes {@link noWorkerAnswered}. */
export async function queryWithDeadline<T>(
  client: Client,
  what: { command: string; host: string; workflowId: string },
  query: () => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + QUERY_TIMEOUT_MS;
  try {
    return await client.withDeadline(deadline, () => queryWhenNotBusy(query));
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError) && Date.now() >= deadline - 50)
      throw noWorkerAnswered(what.command, what.host, what.workflowId);
    throw err;
  }
}

/**
 * The state query of one healing workflow, (host, kind) and the id's service part (null: the legacy id); a
 * missing workflow is a CliError naming its id.
 */
export async function queryHealingState(
  client: Client,
  command: string,
  host: string,
  kind: string,
  service: string | null = null,
): Promise<HealingStateView> {
  const workflowId = healingWorkflowId(host, kind, service);
  try {
    return await queryWithDeadline(client, { command, host, workflowId }, () =>
      client.workflow.getHandle(workflowId).query(stateQuery),
    );
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw healingNotFound(command, host, kind, service);
    throw err;
  }
}

/** The host coordinator's view, or null when the host has no coordinator yet (no canary ever asked). */
export async function queryHostState(
  client: Client,
  host: string,
  command = 'status',
): Promise<HostStateView | null> {
  const workflowId = hostCoordinatorWorkflowId(host);
  try {
    return await queryWithDeadline(client, { command, host, workflowId }, () =>
      client.workflow.getHandle(workflowId).query(hostStateQuery),
    );
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

/** An update the workflow refused (its validator, or the handler threw): exit 1 with its reason. */
export function rejected(command: string, err: unknown): never {
  if (err instanceof WorkflowUpdateFailedError) {
    const cause = err.cause instanceof Error ? err.cause.message : err.message;
    throw new CliError(`healctl ${command}: the workflow rejected it: ${cause}`);
  }
  throw err;
}

/** Update-with-start on the host's coordinator: operator switches work before any canary asked for it. */
export function coordinatorStart(host: string) {
  return new WithStartWorkflowOperation(HostCoordinatorWorkflow, {
    workflowId: hostCoordinatorWorkflowId(host),
    taskQueue: hostTaskQueue(host),
    args: [{ host }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: `Canary lease, budget and cooldown of GPU host ${host}`,
  });
}

export interface HealingListing {
  workflowId: string;
  host: string;
  /**
   * The service's name: the id's (kloros-healing/<host>/<service>/<kind>), else for a legacy id the KlrService
   * search attribute where set (callers may fill it from the state query); null while unknown.
   */
  service: string | null;
  /** Whether the id is the legacy one, without a service (kloros-healing/<host>/<kind>). */
  legacyId: boolean;
  kind: string;
  mode: string | null;
  armed: boolean | null;
  status: string;
  startTime: string;
}

/** Host, then service (an unknown one first), then kind: how `list` and `status` show them. */
export function compareListings(
  a: Pick<HealingListing, 'host' | 'service' | 'kind'>,
  b: Pick<HealingListing, 'host' | 'service' | 'kind'>,
): number {
  return (
    a.host.localeCompare(b.host) ||
    (a.service ?? '').localeCompare(b.service ?? '') ||
    a.kind.localeCompare(b.kind)
  );
}

/**
 * The healing workflows Temporal's visibility knows (search attributes KlrHost/KlrKind/KlrMode/KlrArmed, and
 * KlrService where set), one row per workflow id (the newest run), running ones only unless `includeClosed`;
 * of one kind when `kind` is given. Sorted by host, service, kind.
 */
export async function listHealingWorkflows(
  client: Client,
  host: string | null,
  includeClosed = false,
  kind: string | null = null,
): Promise<HealingListing[]> {
  const clauses = [`WorkflowType = 'HealingWorkflow'`];
  if (!includeClosed) clauses.push(`ExecutionStatus = 'Running'`);
  // Host names and kinds are validated (no quotes can reach the query).
  if (host !== null) clauses.push(`KlrHost = '${host}'`);
  if (kind !== null) clauses.push(`KlrKind = '${kind}'`);
  const byId = new Map<string, HealingListing>();
  for await (const info of client.workflow.list({ query: clauses.join(' AND ') })) {
    const attrs = info.typedSearchAttributes;
    const id = parseHealingWorkflowId(info.workflowId);
    const row: HealingListing = {
      workflowId: info.workflowId,
      host: attrs.get(HOST_ATTRIBUTE) ?? id?.host ?? '',
      service: id?.service ?? attrs.get(SERVICE_ATTRIBUTE) ?? null,
      legacyId: id !== null && id.service === null,
      kind: attrs.get(KIND_ATTRIBUTE) ?? id?.kind ?? '',
      mode: attrs.get(MODE_ATTRIBUTE) ?? null,
      armed: attrs.get(ARMED_ATTRIBUTE) ?? null,
      status: info.status.name,
      startTime: info.startTime.toISOString(),
    };
    const seen = byId.get(row.workflowId);
    if (
      !seen ||
      (seen.status !== 'RUNNING' && (row.status === 'RUNNING' || row.startTime > seen.startTime))
    ) {
      byId.set(row.workflowId, row);
    }
  }
  return [...byId.values()].sort(compareListings);
}
