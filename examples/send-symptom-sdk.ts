// Another team's service sending a symptom with the Temporal TypeScript SDK. It uses @temporalio/client
// only and addresses everything by name — workflow type, id, task queue, update and signal — exactly as
// documented in docs/integrations.md, without importing any code of kloros-healing.
//
//   npx tsx examples/send-symptom-sdk.ts --host gpu-1 --kind vllm_oom --id my-service:req-42 [--alloc-mb 2048] [--signal]
//
// Temporal is found through TEMPORAL_ADDRESS (default 127.0.0.1:7233) and TEMPORAL_NAMESPACE (default).
// It prints the workflow's answer as JSON (update), or {"signalled":true} (--signal).
import { parseArgs } from 'node:util';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';

const { values } = parseArgs({
  options: {
    host: { type: 'string' },
    kind: { type: 'string', default: 'vllm_oom' },
    id: { type: 'string' },
    'alloc-mb': { type: 'string' },
    signal: { type: 'boolean', default: false },
  },
});
if (!values.host || !values.id) {
  console.error('usage: send-symptom-sdk.ts --host HOST --kind KIND --id ID [--alloc-mb N] [--signal]');
  process.exit(2);
}
const { host, kind, id } = values as { host: string; kind: string; id: string };

// The payload the workflow validates (docs/workflows.md): the same id sent twice counts once.
const symptom = {
  kind,
  id,
  eventTime: new Date().toISOString(),
  source: 'my-service',
  details: values['alloc-mb'] ? { allocMb: Number(values['alloc-mb']), family: 'torch_oom' } : {},
};

// HealingWorkflow(host, kind): a documented, deterministic id on the GPU host's own task queue.
const start = {
  workflowId: `kloros-healing/${host}/${kind}`,
  taskQueue: `kloros-healing.${host}`,
  args: [{ host, kind }],
  workflowIdConflictPolicy: 'USE_EXISTING' as const,
};

const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
try {
  const client = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
  if (values.signal) {
    await client.workflow.signalWithStart('HealingWorkflow', {
      ...start,
      signal: 'symptom',
      signalArgs: [symptom],
    });
    console.log(JSON.stringify({ signalled: true, id }));
  } else {
    // Update-with-start: starts the workflow if needed, counts the symptom, answers with the count.
    // The update id makes a retry of this call harmless; a bad payload is refused with the reason.
    const answer = await client.workflow.executeUpdateWithStart('recordSymptom', {
      args: [symptom],
      updateId: `symptom:${id}`,
      startWorkflowOperation: new WithStartWorkflowOperation('HealingWorkflow', start),
    });
    console.log(JSON.stringify(answer));
  }
} finally {
  await connection.close();
}
