// healctl history <kind>: the decision log of one healing workflow — every action taken or refused, why.
import type { Command } from 'commander';
import { withClient } from '../cli/context.js';
import { addHostOption, hostFrom, parseKind } from '../cli/options.js';
import { formatDecisions } from '../cli/state-text.js';
import { queryHealingState } from '../cli/workflows.js';
import { cellLimit, printData, wantsData } from '../cli/output.js';

export function registerHistoryCommand(program: Command): void {
  addHostOption(
    program
      .command('history')
      .description('The decision log of <kind> on the host: time, action (✗ = refused), repeats, reason.')
      .argument('<kind>', 'symptom kind, e.g. vllm_oom'),
  )
    .option('--json', 'print the decisions as JSON')
    .addHelpText(
      'after',
      `
Examples:
  healctl history vllm_oom
  healctl history vllm_oom --host gpu-node-1 --json | jq '.decisions[] | select(.taken == false)'`,
    )
    .action(async (kindArg: string, opts: { host?: string; json?: boolean }) => {
      const kind = parseKind(kindArg, 'history');
      const host = hostFrom(opts, 'history');
      const view = await withClient(({ client }) => queryHealingState(client, 'history', host, kind));
      if (wantsData(opts)) printData({ workflowId: view.workflowId, host, kind, decisions: view.decisions });
      else process.stdout.write(`${view.workflowId}\n` + formatDecisions(view.decisions, cellLimit()));
    });
}
