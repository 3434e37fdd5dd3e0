// healctl start <kind>: start the HealingWorkflow of (host, kind) without a symptom. Idempotent: a running
// one is left as it is (the start uses the USE_EXISTING conflict policy, so a race cannot start two).
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import { HealingWorkflow } from '../../workflows/healing-workflow.js';
import { healingStartOptions } from '../../temporal/symptoms.js';
import { withClient } from '../cli/context.js';
import { addHostOption, addServiceOption, hostFrom, parseKind, parseService } from '../cli/options.js';
import { resolveHealingTarget } from '../cli/healing-target.js';

export function registerStartCommand(program: Command): void {
  addServiceOption(
    addHostOption(
      program
        .command('start')
        .description(
          'Start the healing workflow of <kind> on the host without recording a symptom (idempotent).',
        )
        .argument('<kind>', 'symptom kind, e.g. vllm_oom'),
    ),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  healctl start vllm_oom\n  healctl start vllm_oom --host gpu-node-1\n  healctl start vllm_oom --service llama-70b',
    )
    .action(async (kindArg: string, opts: { host?: string; service?: string }) => {
      const kind = parseKind(kindArg, 'start');
      const host = hostFrom(opts, 'start');
      const service = parseService(opts.service, 'start');
      const line = await withClient(async ({ client }) => {
        const t = await resolveHealingTarget(client, { command: 'start', host, kind, service, create: true });
        const workflowId = t.workflowId;
        try {
          const desc = await client.workflow.getHandle(workflowId).describe();
          if (desc.status.name === 'RUNNING') return `already running: ${workflowId} (run ${desc.runId})`;
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
        const handle = await client.workflow.start(
          HealingWorkflow,
          healingStartOptions(host, kind, t.idService),
        );
        return `started: ${workflowId} (run ${handle.firstExecutionRunId})`;
      });
      process.stdout.write(line + '\n');
    });
}
