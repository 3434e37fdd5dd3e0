// healctl cancel <kind>: cancel the healing workflow of (host, kind). A canary in progress is cancelled
// too, and the workflow restores the service before it ends. On a terminal it asks first unless --yes.
import { createInterface } from 'node:readline/promises';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import { withClient } from '../cli/context.js';
import { CliError } from '../cli/errors.js';
import { addHostOption, addServiceOption, hostFrom, parseKind, parseService } from '../cli/options.js';
import { resolveHealingTarget } from '../cli/healing-target.js';
import { healingNotFound } from '../cli/workflows.js';

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export function registerCancelCommand(program: Command): void {
  addServiceOption(
    addHostOption(
      program
        .command('cancel')
        .description(
          'Cancel the healing workflow of <kind> on the host (its counts and decisions end with it).',
        )
        .argument('<kind>', 'symptom kind, e.g. vllm_oom'),
    ),
  )
    .option('-y, --yes', 'do not ask for confirmation on a terminal')
    .addHelpText(
      'after',
      '\nExamples:\n  healctl cancel vllm_oom --yes\n  healctl cancel vllm_oom --host gpu-node-1\n  healctl cancel vllm_oom --service llama-70b --yes\n\nTo stop canaries on a host for a while, `healctl pause <host>` keeps the counts.',
    )
    .action(async (kindArg: string, opts: { host?: string; service?: string; yes?: boolean }) => {
      const kind = parseKind(kindArg, 'cancel');
      const host = hostFrom(opts, 'cancel');
      const service = parseService(opts.service, 'cancel');
      const workflowId = await withClient(async ({ client }) => {
        const t = await resolveHealingTarget(client, { command: 'cancel', host, kind, service });
        const workflowId = t.workflowId;
        if (!opts.yes && process.stdin.isTTY && process.stdout.isTTY) {
          if (!(await confirm(`Cancel ${workflowId}? Its counts and decisions end with it. [y/N] `))) {
            throw new CliError('healctl cancel: not cancelled');
          }
        }
        const handle = client.workflow.getHandle(workflowId);
        try {
          const desc = await handle.describe();
          if (desc.status.name !== 'RUNNING') {
            throw new CliError(
              `healctl cancel: ${workflowId} is not running (${desc.status.name.toLowerCase()})`,
            );
          }
          await handle.cancel();
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) throw healingNotFound('cancel', host, kind, t.idService);
          throw err;
        }
        return workflowId;
      });
      process.stdout.write(`cancel requested: ${workflowId}\n`);
    });
}
