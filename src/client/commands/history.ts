// healctl history <kind>: the decision log of one healing workflow — every action taken or refused, why.
import type { Command } from 'commander';
import { withClient } from '../cli/context.js';
import { addHostOption, addServiceOption, hostFrom, parseKind, parseService } from '../cli/options.js';
import { resolveHealingTarget } from '../cli/healing-target.js';
import { formatDecisions } from '../cli/state-text.js';
import { queryHealingState } from '../cli/workflows.js';
import { cellLimit, printData, wantsData } from '../cli/output.js';

export function registerHistoryCommand(program: Command): void {
  addServiceOption(
    addHostOption(
      program
        .command('history')
        .description('The decision log of <kind> on the host: time, action (✗ = refused), repeats, reason.')
        .argument('<kind>', 'symptom kind, e.g. vllm_oom'),
    ),
  )
    .option('--json', 'print the decisions as JSON')
    .addHelpText(
      'after',
      `
Examples:
  healctl history vllm_oom
  healctl history vllm_oom --host gpu-node-1 --json | jq '.decisions[] | select(.taken == false)'
  healctl history vllm_oom --service llama-70b`,
    )
    .action(async (kindArg: string, opts: { host?: string; service?: string; json?: boolean }) => {
      const kind = parseKind(kindArg, 'history');
      const host = hostFrom(opts, 'history');
      const service = parseService(opts.service, 'history');
      const view = await withClient(async ({ client }) => {
        const t = await resolveHealingTarget(client, { command: 'history', host, kind, service });
        return queryHealingState(client, 'history', host, kind, t.idService);
      });
      if (wantsData(opts))
        printData({
          workflowId: view.workflowId,
          host,
          service: view.service,
          kind,
          decisions: view.decisions,
        });
      else process.stdout.write(`${view.workflowId}\n` + formatDecisions(view.decisions, cellLimit()));
    });
}
