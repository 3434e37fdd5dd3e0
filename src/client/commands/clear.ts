// healctl clear <kind>: disarm the escalation of <kind> on the host and forget the counted symptoms.
import type { Command } from 'commander';
import { WorkflowNotFoundError } from '@temporalio/client';
import { clearEscalationUpdate } from '../../workflows/healing-messages.js';
import { withClient } from '../cli/context.js';
import { type OperatorOptions, addOperatorOptions, operatorAction } from '../cli/operator.js';
import { addServiceOption, hostFrom, parseKind, parseService } from '../cli/options.js';
import { resolveHealingTarget } from '../cli/healing-target.js';
import { formatHealingState } from '../cli/state-text.js';
import { healingNotFound, rejected } from '../cli/workflows.js';
import { printData, wantsData } from '../cli/output.js';

export function registerClearCommand(program: Command): void {
  addServiceOption(
    addOperatorOptions(
      program
        .command('clear')
        .description('Disarm the escalation of <kind> on the host and forget the counted symptoms.')
        .argument('<kind>', 'symptom kind, e.g. vllm_oom'),
      true,
      true,
    ),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  healctl clear vllm_oom --reason "fixed by hand: lowered max_model_len"\n  healctl clear vllm_oom --service llama-70b --reason "fixed by hand"\n',
    )
    .action(async (kindArg: string, opts: OperatorOptions & { service?: string }) => {
      const kind = parseKind(kindArg, 'clear');
      const host = hostFrom(opts, 'clear');
      const service = parseService(opts.service, 'clear');
      const action = operatorAction(opts, 'clear', true);
      const view = await withClient(async ({ client }) => {
        const t = await resolveHealingTarget(client, { command: 'clear', host, kind, service });
        try {
          return await client.workflow
            .getHandle(t.workflowId)
            .executeUpdate(clearEscalationUpdate, { args: [action] });
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) throw healingNotFound('clear', host, kind, t.idService);
          return rejected('clear', err);
        }
      });
      if (wantsData(opts)) printData(view);
      else process.stdout.write(`disarmed by ${action.by}\n` + formatHealingState(view, Date.now()));
    });
}
