// Helpers for driving healing workflows on the time-skipping server: unique hosts, symptoms,
// polling a query until it says what the test waits for, and moving the server's clock.
import { queryWhenNotBusy } from '../../src/temporal/query-busy.js';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Client } from '@temporalio/client';
import { healingWorkflowId, hostCoordinatorWorkflowId } from '../../src/domain/identifiers.js';
import type { RefusalCode } from '../../src/domain/host-ledger.js';
import { DEFAULT_POLICY, type HealingPolicy } from '../../src/domain/policy.js';
import type { SymptomInput } from '../../src/domain/symptom.js';
import { recordSymptom } from '../../src/temporal/symptoms.js';
import { type HealingStateView, stateQuery } from '../../src/workflows/healing-messages.js';
import { type HostStateView, hostStateQuery } from '../../src/workflows/host-coordinator-messages.js';
import { decisionsOf } from './decisions.js';

let hostCounter = 0;
export function uniqueHost(prefix = 'gpu'): string {
  hostCounter++;
  return `${prefix}-${process.pid}-${hostCounter}`;
}

export function testPolicy(overrides: Partial<HealingPolicy> = {}): HealingPolicy {
  return {
    ...DEFAULT_POLICY,
    maintenanceTimeZone: 'UTC',
    predictIntervalSeconds: 0,
    soakSeconds: 0,
    ...overrides,
  };
}

export async function symptom(
  client: Client,
  host: string,
  kind = 'vllm_oom',
  extra: Partial<SymptomInput> = {},
) {
  return recordSymptom(client, host, { kind, details: { deficitMb: 512, family: 'torch_oom' }, ...extra });
}

export async function healingState(
  client: Client,
  host: string,
  kind = 'vllm_oom',
  service: string | null = null,
): Promise<HealingStateView> {
  return queryWhenNotBusy(() =>
    client.workflow.getHandle(healingWorkflowId(host, kind, service)).query(stateQuery),
  );
}

export async function hostState(client: Client, host: string): Promise<HostStateView> {
  return queryWhenNotBusy(() =>
    client.workflow.getHandle(hostCoordinatorWorkflowId(host)).query(hostStateQuery),
  );
}

/** Poll (in real time, the server's clock standing still) until `check` returns a value. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await delay(50);
  }
}

/** Skip the server's clock to the next hh:mm in UTC (today's if still ahead). */
export async function skipToUtc(env: TestWorkflowEnvironment, hour: number, minute = 0): Promise<number> {
  const now = await env.currentTimeMs();
  const d = new Date(now);
  let target = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), hour, minute);
  if (target <= now) target += 24 * 3600_000;
  await env.sleep(target - now);
  return target;
}

/** Skip the server's clock to an absolute instant. */
export async function skipTo(env: TestWorkflowEnvironment, targetMs: number): Promise<void> {
  const now = await env.currentTimeMs();
  if (targetMs > now) await env.sleep(targetMs - now);
}

// Decisions are found by their code, never by their words.
export { codesOf, decisionsOf, hasCode } from './decisions.js';

/**
 * Waits until the host refused the kind's canary for `refusal` (by its code, never its words), checks that
 * the coordinator counted it, and returns the healing state then.
 */
export async function hostRefusal(
  client: Client,
  host: string,
  refusal: RefusalCode,
  kind = 'vllm_oom',
): Promise<HealingStateView> {
  const state = await eventually(`a ${refusal} refusal`, async () => {
    const s = await healingState(client, host, kind);
    return decisionsOf(s, 'canary_refused_by_host').some((d) => d.params.refusal === refusal) ? s : undefined;
  });
  const counted = (await hostState(client, host)).counters.leaseRefusals[refusal];
  assert.ok(counted, `the coordinator counted the ${refusal} refusal`);
  return state;
}
