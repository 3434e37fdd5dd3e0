// healctl list: every healing workflow Temporal's visibility knows, with host, service, kind, mode, armed and
// count, sorted by host, service and kind.
import type { Command } from 'commander';
import { withClient } from '../cli/context.js';
import { formatTable } from '../cli/format.js';
import { addHostOption, addServiceOption, hostFrom, parseService } from '../cli/options.js';
import {
  type HealingListing,
  QUERY_TIMEOUT_MS,
  compareListings,
  listHealingWorkflows,
} from '../cli/workflows.js';
import { configuredServices } from '../cli/healing-target.js';
import { cellLimit, printData, wantsData } from '../cli/output.js';
import { stateQuery } from '../../workflows/healing-messages.js';

export interface ListRow extends HealingListing {
  /** Symptoms counted in the last 24 h (state query); null when the workflow did not answer. */
  count24h: number | null;
  threshold: number | null;
  phase: string | null;
}

export function formatList(rows: readonly ListRow[], maxCell = Infinity): string {
  if (rows.length === 0) return 'no healing workflows\n';
  return formatTable(
    ['HOST', 'SERVICE', 'KIND', 'MODE', 'ARMED', 'COUNT', 'PHASE', 'STATUS'],
    rows.map((r) => [
      r.host,
      r.service ?? '-',
      r.kind,
      r.mode ?? '-',
      r.armed === null ? '-' : r.armed ? 'yes' : 'no',
      r.count24h === null ? '-' : `${r.count24h}/${r.threshold ?? '?'}`,
      r.phase?.replace(/_/g, ' ') ?? '-',
      r.status.toLowerCase().replace(/_/g, ' '),
    ]),
    maxCell,
  );
}

export function registerListCommand(program: Command): void {
  addServiceOption(
    addHostOption(
      program
        .command('list')
        .description(
          'All healing workflows (from Temporal’s visibility): host, service, kind, mode, armed, 24 h count.',
        ),
    ),
    'only the workflows of this service',
  )
    .option('--all-hosts', 'every host, not only --host')
    .option('--include-closed', 'also workflows that were cancelled or ended')
    .option('--json', 'print the rows as JSON')
    .addHelpText(
      'after',
      `
Examples:
  healctl list
  healctl list --all-hosts
  healctl list --host gpu-node-1 --json | jq '.[] | select(.armed)'
  healctl list --all-hosts --service llama-70b

Rows are sorted by host, service and kind. SERVICE is "-" for a workflow with a legacy id
(kloros-healing/<host>/<kind>) whose service no worker has named yet.

Visibility is eventually consistent: a workflow started a moment ago may take a second to appear.`,
    )
    .action(
      async (opts: {
        host?: string;
        service?: string;
        allHosts?: boolean;
        includeClosed?: boolean;
        json?: boolean;
      }) => {
        const host = opts.allHosts ? null : hostFrom(opts, 'list');
        const service = parseService(opts.service, 'list');
        const all = await withClient(async ({ client }) => {
          const listed = await listHealingWorkflows(client, host, opts.includeClosed ?? false);
          return Promise.all(
            listed.map(async (w): Promise<ListRow> => {
              if (w.status !== 'RUNNING') return { ...w, count24h: null, threshold: null, phase: null };
              try {
                const v = await client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () =>
                  client.workflow.getHandle(w.workflowId).query(stateQuery),
                );
                return {
                  ...w,
                  service: w.service ?? v.service ?? null,
                  mode: v.mode,
                  armed: v.armed,
                  count24h: v.count24h,
                  threshold: v.threshold,
                  phase: v.phase,
                };
              } catch {
                return { ...w, count24h: null, threshold: null, phase: null };
              }
            }),
          );
        });
        const rows = all
          .map((r) => ({ ...r, service: r.service ?? legacyServiceName(r) }))
          .filter((r) => service === undefined || r.service === service)
          .sort(compareListings);
        if (wantsData(opts)) printData(rows);
        else process.stdout.write(formatList(rows, cellLimit()));
        if (!wantsData(opts) && rows.length === 0 && service !== undefined && all.length > 0) {
          const found = [...new Set(all.map((r) => r.service ?? legacyServiceName(r) ?? '-'))].sort();
          process.stderr.write(
            `healctl list: no workflows of service ${service}${host === null ? '' : ` on ${host}`}; services with some: ${found.join(', ')}\n`,
          );
        } else if (!wantsData(opts) && rows.length === 0 && host !== null) {
          const others = await withClient(({ client }) => listHealingWorkflows(client, null, false));
          const hosts = [...new Set(others.map((w) => w.host))].sort();
          process.stderr.write(
            hosts.length > 0
              ? `healctl list: none on ${host}; hosts with healing workflows: ${hosts.slice(0, 10).join(', ')}${hosts.length > 10 ? ', …' : ''} (--host NAME, or --all-hosts)\n`
              : `healctl list: none on ${host}, nor on any other host: nothing has been recorded yet (healctl symptom <kind>, or the observer)\n`,
          );
        }
      },
    );
}

/** A legacy id's service, where this environment's services file (or shortcut) describes the row's host. */
function legacyServiceName(row: Pick<ListRow, 'host' | 'legacyId'>): string | null {
  if (!row.legacyId) return null;
  return configuredServices(row.host)?.find((s) => s.legacyIds)?.name ?? null;
}
