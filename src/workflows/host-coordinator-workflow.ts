// HostCoordinatorWorkflow(host): the one place that says yes or no to a canary on a GPU host. Healing
// workflows of every kind ask it for the lease; it checks the window, the nightly budget, the cooldown,
// the pause switch and the restore-failure latch, answers by signal, and charges the downtime on release.
// This file is the loop; the verdicts are the pure host-ledger.ts, the messages host-handlers.ts, what each
// lease message does host-lease-steps.ts.
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyLocalActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostActivities } from '../activities/types.js';
import { type LeaseRelease, leaseExpired } from '../domain/host-ledger.js';
import { parseMaintenanceWindow } from '../domain/maintenance-window.js';
import type { HostCoordinatorInput } from './host-coordinator-messages.js';
import { registerHostHandlers } from './host-handlers.js';
import { type HostRules, expireLease, handleRelease, handleRequest } from './host-lease-steps.js';
import { HostRun } from './host-run.js';
import { readHostInput } from './workflow-input.js';

const { loadHealingPolicy } = proxyLocalActivities<HostActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumInterval: '30 seconds' },
});

export async function HostCoordinatorWorkflow(input: HostCoordinatorInput): Promise<void> {
  const workflowId = workflowInfo().workflowId;
  const reading = readHostInput(input, workflowId);
  if (!reading.ok) throw ApplicationFailure.nonRetryable(reading.error, 'InvalidWorkflowInput');
  const { host, carried } = reading.value;
  const run = new HostRun(workflowId, host, carried);
  registerHostHandlers(run);

  for (const note of reading.notes) run.decide({ code: 'start_input_refused', params: { note } });
  const policy = await loadHealingPolicy();
  const window = parseMaintenanceWindow(policy.maintenanceWindow, policy.maintenanceTimeZone);
  run.policy = policy;
  run.window = window;
  const rules: HostRules = { policy, window };

  for (;;) {
    run.refreshRules();
    run.publish();
    const lease = run.ledger.lease;
    const timeout = lease ? Math.max(1, lease.expiresAt - Date.now()) : undefined;
    // Continue-as-new waits for the lease to be released: while one is held, a suggestion to continue
    // must not wake the loop, or it would spin without ever yielding (the task never completes, and the
    // worker thread runs out of stack).
    const woken = () =>
      run.requests.length > 0 ||
      run.releases.length > 0 ||
      (run.ledger.lease === null && run.shouldContinueAsNew());
    if (timeout === undefined) await condition(woken);
    else await condition(woken, timeout);

    while (run.releases.length > 0) await handleRelease(run, rules, run.releases.shift() as LeaseRelease);
    const held = run.ledger.lease;
    if (held !== null && leaseExpired(held, Date.now())) await expireLease(run, rules, held);
    for (let q = run.requests.shift(); q !== undefined; q = run.requests.shift())
      await handleRequest(run, rules, q);

    if (run.shouldContinueAsNew() && run.ledger.lease === null) {
      // A `lease` update's handler waits for the loop: wait for the handlers, or for a request to answer.
      const pending = () => run.requests.length > 0 || run.releases.length > 0;
      await condition(() => allHandlersFinished() || pending());
      if (!pending()) {
        await continueAsNew<typeof HostCoordinatorWorkflow>({ host, carried: run.carried() });
      }
    }
  }
}
