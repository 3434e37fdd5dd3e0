// healctl status [<kind>]: what the loop knows and will do next, for one kind or every kind on the host,
// with the host coordinator's view (pause, restore-failure latch, lease, budget).
import type { Client } from '@temporalio/client';
import { type Command, InvalidArgumentError } from 'commander';
import type { HealingStateView } from '../../workflows/healing-messages.js';
import type { HostStateView } from '../../workflows/host-coordinator-messages.js';
import { withClient } from '../cli/context.js';
import { addHostOption, hostFrom, parseKind } from '../cli/options.js';
import { formatHealingState, formatHostState } from '../cli/state-text.js';
import { listHealingWorkflows, queryHealingState, queryHostState } from '../cli/workflows.js';
import { printData, wantsData } from '../cli/output.js';

export interface StatusSnapshot {
  host: string;
  healing: HealingStateView[];
  hostState: HostStateView | null;
}

/** The views of one kind, or of every running healing workflow of the host (from visibility). */
export async function readStatus(
  client: Client,
  command: string,
  host: string,
  kind: string | undefined,
): Promise<StatusSnapshot> {
  const kinds = kind !== undefined ? [kind] : (await listHealingWorkflows(client, host)).map((w) => w.kind);
  const [healing, hostState] = await Promise.all([
    Promise.all(kinds.map((k) => queryHealingState(client, command, host, k))),
    queryHostState(client, host),
  ]);
  return { host, healing, hostState };
}

export function formatStatus(s: StatusSnapshot, now: number, lastDecisions: number): string {
  const parts = s.healing.map((v) => formatHealingState(v, now, lastDecisions));
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
  addHostOption(
    program
      .command('status')
      .description(
        'What the loop knows and will do next: counts, flag, window, budget, last canary, recommendation, decisions.',
      )
      .argument('[kind]', 'one symptom kind (default: every kind on the host)'),
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
  healctl status vllm_oom --json | jq .healing[0].next`,
    )
    .action(
      async (kindArg: string | undefined, opts: { host?: string; decisions: number; json?: boolean }) => {
        const kind = kindArg === undefined ? undefined : parseKind(kindArg, 'status');
        const host = hostFrom(opts, 'status');
        const snapshot = await withClient(({ client }) => readStatus(client, 'status', host, kind));
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
