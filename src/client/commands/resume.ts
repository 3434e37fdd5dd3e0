// healctl resume <host>: Grant canaries on <host> again after `healctl pause`.
// Update-with-start on the host's coordinator, so it works before any canary asked for a lease.
import type { Command } from 'commander';
import { resumeHostUpdate } from '../../workflows/host-coordinator-messages.js';
import { withClient } from '../cli/context.js';
import { type OperatorOptions, addOperatorOptions, operatorAction } from '../cli/operator.js';
import { parseHost } from '../cli/options.js';
import { formatHostState } from '../cli/state-text.js';
import { coordinatorStart, rejected } from '../cli/workflows.js';
import { printData, wantsData } from '../cli/output.js';

export function registerResumeCommand(program: Command): void {
  addOperatorOptions(
    program
      .command('resume')
      .description('Grant canaries on <host> again after `healctl pause`.')
      .argument('<host>', 'the GPU host, e.g. gpu-node-1'),
    false,
    false,
  )
    .addHelpText('after', '\nExamples:\n  healctl resume gpu-node-1\n')
    .action(async (hostArg: string, opts: OperatorOptions) => {
      const host = parseHost(hostArg, 'resume');
      const action = operatorAction(opts, 'resume', false, 'resume requested with healctl');
      const view = await withClient(async ({ client }) => {
        try {
          return await client.workflow.executeUpdateWithStart(resumeHostUpdate, {
            args: [action],
            startWorkflowOperation: coordinatorStart(host),
          });
        } catch (err) {
          return rejected('resume', err);
        }
      });
      if (wantsData(opts)) printData(view);
      else process.stdout.write(`resumed by ${action.by}\n` + formatHostState(view, host, Date.now()));
    });
}
