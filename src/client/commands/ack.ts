// healctl ack <host>: Acknowledge a failed restore on <host> (clears the latch) once the service is healthy on a known-good config.
// Update-with-start on the host's coordinator, so it works before any canary asked for a lease.
import type { Command } from 'commander';
import { acknowledgeRestoreFailureUpdate } from '../../workflows/host-coordinator-messages.js';
import { withClient } from '../cli/context.js';
import { type OperatorOptions, addOperatorOptions, operatorAction } from '../cli/operator.js';
import { parseHost } from '../cli/options.js';
import { formatHostState } from '../cli/state-text.js';
import { coordinatorStart, rejected } from '../cli/workflows.js';
import { printData, wantsData } from '../cli/output.js';

export function registerAckCommand(program: Command): void {
  addOperatorOptions(
    program
      .command('ack')
      .description(
        'Acknowledge a failed restore on <host> (clears the latch) once the service is healthy on a known-good config.',
      )
      .argument('<host>', 'the GPU host, e.g. gpu-node-1'),
    true,
    false,
  )
    .addHelpText(
      'after',
      '\nExamples:\n  healctl ack gpu-node-1 --reason "restored by hand, config checked"\n',
    )
    .action(async (hostArg: string, opts: OperatorOptions) => {
      const host = parseHost(hostArg, 'ack');
      const action = operatorAction(opts, 'ack', true, 'ack requested with healctl');
      const view = await withClient(async ({ client }) => {
        try {
          return await client.workflow.executeUpdateWithStart(acknowledgeRestoreFailureUpdate, {
            args: [action],
            startWorkflowOperation: coordinatorStart(host),
          });
        } catch (err) {
          return rejected('ack', err);
        }
      });
      if (wantsData(opts)) printData(view);
      else {
        // An answer from an older worker has no `acknowledged`: its decisions say it all the same.
        const what =
          view.acknowledged === undefined
            ? `acknowledged by ${action.by}`
            : view.acknowledged === null
              ? `nothing to acknowledge: no restore failure is latched on ${host} (recorded all the same)`
              : `acknowledged by ${action.by}: ${view.acknowledged.kind} restore failure of ${view.acknowledged.at} (${view.acknowledged.message}); canaries may run on ${host} again`;
        process.stdout.write(`${what}\n` + formatHostState(view, host, Date.now()));
      }
    });
}
