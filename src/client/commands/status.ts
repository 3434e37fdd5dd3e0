// healctl status [<kind>]: what the loop knows and will do next, for one kind or every kind on the host,
// with the host coordinator's view (pause, restore-failure latch, lease, budget).
import type { Client } from '@temporalio/client';
import { type Command, InvalidArgumentError } from 'commander';
import type { HealingStateView } from '../../workflows/healing-messages.js';
import type { HostStateView } from '../../workflows/host-coordinator-messages.js';
import { withClient } from '../cli/context.js';
import { addHostOption, addServiceOption, hostFrom, parseKind, parseService } from '../cli/options.js';
import { formatHealingState, formatHostState } from '../cli/state-text.js';
import {
  type HealingListing,
  listHealingWorkflows,
  queryHealingState,
  queryHostState,
} from '../cli/workflows.js';
import { configuredServices, resolveHealingTarget } from '../cli/healing-target.js';
import { CliError } from '../cli/errors.js';
import { parseHealingWorkflowId } from '../../domain/identifiers.js';
import { routeService } from '../../service/services-file.js';
import { printData, wantsData } from '../cli/output.js';

export interface StatusSnapshot {
  host: string;
  healing: HealingStateView[];
  hostState: HostStateView | null;
}

/**
 * The views of one kind (of the service --service names, or the one resolveHealingTarget finds), or of every
 * running healing workflow of the host (from visibility; of one service with --service).
 */
export async function readStatus(
  client: Client,
  command: string,
  host: string,
  kind: string | undefined,
  service?: string,
): Promise<StatusSnapshot> {
  const [healing, hostState] = await Promise.all([
    kind !== undefined
      ? resolveHealingTarget(client, { command, host, kind, service }).then(async (t) => [
          await queryHealingState(client, command, host, kind, t.idService),
        ])
      : readHostHealing(client, command, host, service),
    queryHostState(client, host),
  ]);
  return { host, healing, hostState };
}

async function readHostHealing(
  client: Client,
  command: string,
  host: string,
  service: string | undefined,
): Promise<HealingStateView[]> {
  const rows = await listHealingWorkflows(client, host);
  const configured = service === undefined ? null : configuredServices(host);
  const routed = configured && service !== undefined ? routeService(configured, service) : null;
  if (routed && !routed.ok) throw new CliError(`healctl ${command}: ${routed.error}`);
  const wanted = rows.filter(
    (w) => !routed?.ok || (w.legacyId ? routed.service === null : w.service === routed.service),
  );
  const views = await Promise.all(
    wanted.map((w) => queryHealingState(client, command, host, w.kind, w.legacyId ? null : w.service)),
  );
  const named = views
    .map((v, i) => ({ v, name: serviceOf(v, wanted[i]) }))
    .filter(({ name }) => service === undefined || routed?.ok || name === service);
  if (service !== undefined && named.length === 0 && views.length > 0) {
    const found = [...new Set(views.map((v, i) => serviceOf(v, wanted[i]) ?? '(legacy ids, not named yet)'))];
    throw new CliError(
      `healctl ${command}: no healing workflow of service "${service}" on ${host}; it has some for: ${found.join(', ')} (--service one of: ${found.join(', ')})`,
    );
  }
  return named
    .sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '') || a.v.kind.localeCompare(b.v.kind))
    .map(({ v }) => v);
}

/** The service's name: the view's, else the listing's (the id's service, or the KlrService attribute). */
function serviceOf(view: HealingStateView, row: HealingListing | undefined): string | null {
  return view.service ?? row?.service ?? parseHealingWorkflowId(view.workflowId)?.service ?? null;
}

/** The services of the views, in order: a header each when there is more than one. */
function groupByService(views: readonly HealingStateView[]): [string, HealingStateView[]][] {
  const groups = new Map<string, HealingStateView[]>();
  for (const v of views) {
    const idService = parseHealingWorkflowId(v.workflowId)?.service ?? null;
    const key =
      idService !== null
        ? `service ${idService}`
        : `service ${v.service ?? '(not named yet)'}, legacy ids kloros-healing/${v.host}/<kind>`;
    groups.set(key, [...(groups.get(key) ?? []), v]);
  }
  return [...groups.entries()];
}

export function formatStatus(s: StatusSnapshot, now: number, lastDecisions: number): string {
  const groups = groupByService(s.healing);
  const parts =
    groups.length > 1
      ? groups.map(
          ([header, views]) =>
            `== ${header} on ${s.host} ==\n\n` +
            views.map((v) => formatHealingState(v, now, lastDecisions)).join('\n'),
        )
      : s.healing.map((v) => formatHealingState(v, now, lastDecisions));
  if (parts.length === 0) {
    parts.push(
      `no healing workflows on ${s.host} yet — record a symptom with \`healctl symptom <kind> --host ${s.host}\`, or see \`healctl list --all-hosts\`\n`,
    );
  }
  parts.push(formatHostState(s.hostState, s.host, now));
  return parts.join('\n');
}

export function parseCount(raw: string, option: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 200) {
    // commander reports it as a usage error (exit 2).
    throw new InvalidArgumentError(`${option}: expected a whole number 0-200, got ${JSON.stringify(raw)}`);
  }
  return n;
}

export function registerStatusCommand(program: Command): void {
  addServiceOption(
    addHostOption(
      program
        .command('status')
        .description(
          'What the loop knows and will do next: counts, flag, window, budget, last canary, recommendation, decisions.',
        )
        .argument('[kind]', 'one symptom kind (default: every kind on the host)'),
    ),
    'the service on the host, when it runs several (without <kind>: only that service’s workflows)',
  )
    .option('--decisions <n>', 'how many recent decisions to show', (v) => parseCount(v, '--decisions'), 5)
    .option('--json', 'print the state query’s answers as JSON')
    .addHelpText(
      'after',
      `
Exits 1 when the host is latched by a failed restore (after printing the state), 0 otherwise.

Examples:
  healctl status                     every kind on this host, and the host's coordinator
  healctl status vllm_oom --host gpu-node-1
  healctl status vllm_oom --json | jq .healing[0].next
  healctl status vllm_oom --service llama-70b   on a host that runs several vLLM services

On a host with several services, status without <kind> groups the workflows by service.`,
    )
    .action(
      async (
        kindArg: string | undefined,
        opts: { host?: string; service?: string; decisions: number; json?: boolean },
      ) => {
        const kind = kindArg === undefined ? undefined : parseKind(kindArg, 'status');
        const host = hostFrom(opts, 'status');
        const service = parseService(opts.service, 'status');
        const snapshot = await withClient(({ client }) => readStatus(client, 'status', host, kind, service));
        if (wantsData(opts)) printData(snapshot);
        else process.stdout.write(formatStatus(snapshot, Date.now(), opts.decisions));
        // Like `kubectl argo rollouts status`: a script can tell a host that needs an operator.
        const latch = snapshot.hostState?.restoreFailure;
        if (latch) {
          process.stderr.write(
            `healctl status: ${host} is latched: a ${latch.kind} restore failed at ${latch.at}; no canary runs until \`healctl ack ${host}\` (exit 1)\n`,
          );
          process.exitCode = 1;
        }
      },
    );
}
