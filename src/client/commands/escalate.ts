// healctl escalate <kind>: arm the escalation of <kind> now, whatever the count: a canary may run in the next window.
import type { Command } from 'commander';
import { WorkflowNotFoundError } from '@temporalio/client';
import { forceEscalationUpdate } from '../../workflows/healing-messages.js';
import { withClient } from '../cli/context.js';
import { type OperatorOptions, addOperatorOptions, operatorAction } from '../cli/operator.js';
import { addServiceOption, hostFrom, parseKind, parseService } from '../cli/options.js';
import { resolveHealingTarget } from '../cli/healing-target.js';
import { formatHealingState } from '../cli/state-text.js';
import { healingNotFound, rejected } from '../cli/workflows.js';
import { printData, wantsData } from '../cli/output.js';

export function registerEscalateCommand(program: Command): void {
  addServiceOption(
    addOperatorOptions(
      program
        .command('escalate')
        .description(
          'Arm the escalation of <kind> now, whatever the count: a canary may run in the next window.',
        )
        .argument('<kind>', 'symptom kind, e.g. vllm_oom'),
      true,
      true,
    ),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  healctl escalate vllm_oom --reason "OOMs seen in the app logs" --host gpu-node-1\n  healctl escalate vllm_oom --service llama-70b --reason "OOMs tonight"\n',
    )
    .action(async (kindArg: string, opts: OperatorOptions & { service?: string }) => {
      const kind = parseKind(kindArg, 'escalate');
      const host = hostFrom(opts, 'escalate');
      const service = parseService(opts.service, 'escalate');
      const action = operatorAction(opts, 'escalate', true);
      const view = await withClient(async ({ client }) => {
        const t = await resolveHealingTarget(client, { command: 'escalate', host, kind, service });
        try {
          return await client.workflow
            .getHandle(t.workflowId)
            .executeUpdate(forceEscalationUpdate, { args: [action] });
        } catch (err) {
          if (err instanceof WorkflowNotFoundError)
            throw healingNotFound('escalate', host, kind, t.idService);
          return rejected('escalate', err);
        }
      });
      if (wantsData(opts)) printData(view);
      else process.stdout.write(`armed by ${action.by}\n` + formatHealingState(view, Date.now()));
    });
}
