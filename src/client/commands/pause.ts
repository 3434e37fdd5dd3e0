// healctl pause <host>: Stop granting canaries on <host> (symptoms are still counted) until `healctl resume`.
// Update-with-start on the host's coordinator, so it works before any canary asked for a lease.
import type { Command } from 'commander';
import { pauseHostUpdate } from '../../workflows/host-coordinator-messages.js';
import { withClient } from '../cli/context.js';
import { type OperatorOptions, addOperatorOptions, operatorAction } from '../cli/operator.js';
import { parseHost } from '../cli/options.js';
import { formatHostState } from '../cli/state-text.js';
import { coordinatorStart, rejected } from '../cli/workflows.js';
import { printData, wantsData } from '../cli/output.js';

export function registerPauseCommand(program: Command): void {
  addOperatorOptions(
    program
      .command('pause')
      .description('Stop granting canaries on <host> (symptoms are still counted) until `healctl resume`.')
      .argument('<host>', 'the GPU host, e.g. gpu-node-1'),
    true,
    false,
  )
    .addHelpText('after', '\nExamples:\n  healctl pause gpu-node-1 --reason "driver update tonight"\n')
    .action(async (hostArg: string, opts: OperatorOptions) => {
      const host = parseHost(hostArg, 'pause');
      const action = operatorAction(opts, 'pause', true, 'pause requested with healctl');
      const view = await withClient(async ({ client }) => {
        try {
          return await client.workflow.executeUpdateWithStart(pauseHostUpdate, {
            args: [action],
            startWorkflowOperation: coordinatorStart(host),
          });
        } catch (err) {
          return rejected('pause', err);
        }
      });
      if (wantsData(opts)) printData(view);
      else process.stdout.write(`paused by ${action.by}\n` + formatHostState(view, host, Date.now()));
    });
}
