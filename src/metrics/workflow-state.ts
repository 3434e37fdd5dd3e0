// Reads this host's durable state from Temporal for the metrics, once when the worker starts: the
// HealingWorkflows of the host (visibility: search attribute KlrHost, running only) and the host
// coordinator, by query. Afterwards the workflows report themselves (src/workflows/metrics-sink.ts).
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { hostCoordinatorWorkflowId } from '../domain/identifiers.js';
import { queryWhenNotBusy } from '../temporal/query-busy.js';
import { type HealingStateView, stateQuery } from '../workflows/healing-messages.js';
import { type HostStateView, hostStateQuery } from '../workflows/host-coordinator-messages.js';
import { HOST_ATTRIBUTE } from '../workflows/search-attributes.js';

export interface HostStateReading {
  /** Views of the running healing workflows that answered. */
  healing: HealingStateView[];
  /** Workflow ids that are running but did not answer in time (their last view stands). */
  unanswered: string[];
  /** The coordinator's view; null when this host has none (no lease was ever asked for). */
  host: HostStateView | null;
}

export interface WorkflowStateReader {
  read(): Promise<HostStateReading>;
}

/** How long one query may take: a worker under load answers late, a stuck one must not stall a scrape. */
const QUERY_DEADLINE_MS = 5_000;

export function temporalStateReader(client: Client, host: string): WorkflowStateReader {
  const within = <T>(fn: () => Promise<T>): Promise<T> =>
    client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, fn);

  return {
    async read() {
      // The host name is validated (HOST_PATTERN: no quotes), so it can be put in the query as it is.
      const query = `${HOST_ATTRIBUTE.name} = '${host}' AND WorkflowType = 'HealingWorkflow' AND ExecutionStatus = 'Running'`;
      const ids: string[] = [];
      await within(async () => {
        for await (const info of client.workflow.list({ query })) ids.push(info.workflowId);
      });
      const healing: HealingStateView[] = [];
      const unanswered: string[] = [];
      await Promise.all(
        [...new Set(ids)].map(async (id) => {
          try {
            healing.push(
              await within(() => queryWhenNotBusy(() => client.workflow.getHandle(id).query(stateQuery))),
            );
          } catch {
            unanswered.push(id);
          }
        }),
      );
      let hostView: HostStateView | null = null;
      try {
        hostView = await within(() =>
          client.workflow.getHandle(hostCoordinatorWorkflowId(host)).query(hostStateQuery),
        );
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
      return { healing, unanswered, host: hostView };
    },
  };
}

/** One cheap frontend call (GetSystemInfo) that succeeds while Temporal is reachable. */
export async function checkTemporalContact(client: Client): Promise<void> {
  await client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, () =>
    client.workflowService.getSystemInfo({}),
  );
}

/** Whether the workflow of that id still runs (its latest run). */
export async function workflowStillRunning(client: Client, workflowId: string): Promise<boolean> {
  try {
    const d = await client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, () =>
      client.workflow.getHandle(workflowId).describe(),
    );
    return d.status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}
