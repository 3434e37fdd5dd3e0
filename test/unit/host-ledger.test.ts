import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type HostLedgerState,
  type LeaseRequest,
  applyRelease,
  budgetLeftMs,
  decideLease,
  initialHostLedgerState,
} from '../../src/domain/host-ledger.js';
import { parseMaintenanceWindow } from '../../src/domain/maintenance-window.js';
import { DEFAULT_POLICY, type HealingPolicy } from '../../src/domain/policy.js';

const policy: HealingPolicy = {
  ...DEFAULT_POLICY,
  maintenanceTimeZone: 'UTC',
  maxDowntimeSeconds: 60,
  cooldownHours: 6,
};
const window = parseMaintenanceWindow('03:00-07:00', 'UTC');
const NIGHT = Date.UTC(2026, 10, 28, 3, 0);
const HOUR = 3600_000;
const request: LeaseRequest = {
  requestId: 'r1',
  holderWorkflowId: 'kloros-healing/gpu-1/vllm_oom',
  kind: 'vllm_oom',
  predictedDowntimeMs: 20_000,
};

function grant(state: HostLedgerState, now: number) {
  const verdict = decideLease(state, request, policy, window, now, 'lease-1');
  assert.ok(verdict.granted, verdict.granted ? '' : verdict.reason);
  return { ...state, lease: verdict.lease };
}

describe('decideLease', () => {
  test('grants in the window with budget, cooldown over and no other lease', () => {
    const verdict = decideLease(
      initialHostLedgerState(),
      request,
      policy,
      window,
      NIGHT + 10 * 60_000,
      'lease-1',
    );
    assert.ok(verdict.granted);
    if (verdict.granted) {
      assert.equal(verdict.lease.budgetLeftMs, 60_000);
      assert.equal(verdict.lease.windowOpensAt, NIGHT);
      assert.equal(verdict.lease.windowClosesAt, NIGHT + 4 * HOUR);
      assert.equal(verdict.lease.expiresAt, NIGHT + 10 * 60_000 + policy.leaseTtlSeconds * 1000);
    }
  });

  const refusals: [string, (s: HostLedgerState) => HostLedgerState, number, RegExp][] = [
    [
      'outside the window',
      (s) => s,
      NIGHT - 60_000,
      /^outside the maintenance window; window opens 03:00 UTC, in 1 m/,
    ],
    [
      'another lease held',
      (s) => grant(s, NIGHT),
      NIGHT + 1000,
      /^another canary holds the host \(vllm_oom, since 03:00\)/,
    ],
    [
      'cooldown',
      (s) => ({ ...s, cooldownUntil: NIGHT + 2 * HOUR }),
      NIGHT + 30 * 60_000,
      /^cooldown: 1 h 30 m left \(until 05:00 UTC\)$/,
    ],
    [
      'budget spent',
      (s) => ({ ...s, ledger: { windowOpensAt: NIGHT, spentMs: 48_000, overrunMs: 0, canaries: 1 } }),
      NIGHT + 1000,
      /^budget 12 s left < predicted 20 s$/,
    ],
    ['window closing', (s) => s, NIGHT + 4 * HOUR - 10_000, /^window closes in 10 s < predicted 20 s$/],
    [
      'paused',
      (s) => ({ ...s, paused: { at: NIGHT, by: 'alice', reason: 'driver upgrade' } }),
      NIGHT + 1000,
      /^host paused by alice at 03:00: driver upgrade$/,
    ],
    [
      'restore failure latched',
      (s) => ({ ...s, restoreFailure: { at: NIGHT, kind: 'vllm_oom', message: 'stays down' } }),
      NIGHT + 1000,
      /^restore failed at 03:00 UTC \(vllm_oom: stays down\); canaries stop/,
    ],
  ];
  for (const [name, setup, now, reason] of refusals) {
    test(`refuses: ${name}`, () => {
      const verdict = decideLease(setup(initialHostLedgerState()), request, policy, window, now, 'lease-2');
      assert.equal(verdict.granted, false);
      if (!verdict.granted) assert.match(verdict.reason, reason);
    });
  }

  test('the latch is reported before a pause, a pause before the window', () => {
    const state = {
      ...initialHostLedgerState(),
      paused: { at: 0, by: 'a', reason: 'r' },
      restoreFailure: { at: 0, kind: 'k', message: 'm' },
    };
    const verdict = decideLease(state, request, policy, window, NIGHT - HOUR, 'x');
    assert.ok(!verdict.granted && verdict.code === 'restore_failure_latched');
  });

  test('busy is retried within the window; cooldown retries when it ends inside the window', () => {
    const busy = decideLease(
      grant(initialHostLedgerState(), NIGHT),
      request,
      policy,
      window,
      NIGHT + 1000,
      'x',
    );
    assert.ok(!busy.granted && busy.retryAt === NIGHT + 61_000);
    const cool = decideLease(
      { ...initialHostLedgerState(), cooldownUntil: NIGHT + HOUR },
      request,
      policy,
      window,
      NIGHT,
      'x',
    );
    assert.ok(!cool.granted && cool.retryAt === NIGHT + HOUR);
    const late = decideLease(
      { ...initialHostLedgerState(), cooldownUntil: NIGHT + 5 * HOUR },
      request,
      policy,
      window,
      NIGHT,
      'x',
    );
    assert.ok(!late.granted && late.retryAt === null);
  });

  test('a lease past its expiry no longer blocks', () => {
    const held = grant(initialHostLedgerState(), NIGHT);
    const verdict = decideLease(held, request, policy, window, NIGHT + policy.leaseTtlSeconds * 1000, 'x');
    assert.ok(verdict.granted);
  });

  test('rejects a request without a positive predicted downtime', () => {
    const verdict = decideLease(
      initialHostLedgerState(),
      { ...request, predictedDowntimeMs: Number.NaN },
      policy,
      window,
      NIGHT,
      'x',
    );
    assert.ok(!verdict.granted && verdict.code === 'invalid_request');
  });
});

describe('applyRelease and the nightly budget', () => {
  test('charges the downtime to the lease window and starts the cooldown', () => {
    const held = grant(initialHostLedgerState(), NIGHT + 60_000);
    const after = applyRelease(
      held,
      { leaseId: 'lease-1', downtimeMs: 27_000, outcome: 'restored' },
      policy,
      NIGHT + 120_000,
    );
    assert.equal(after.lease, null);
    assert.deepEqual(after.ledger, { windowOpensAt: NIGHT, spentMs: 27_000, overrunMs: 0, canaries: 1 });
    assert.equal(after.cooldownUntil, NIGHT + 120_000 + 6 * HOUR);
    assert.equal(budgetLeftMs(after, policy, window, NIGHT + 130_000), 33_000);
  });

  test('a restore past the budget is charged and recorded as overrun', () => {
    const held = {
      ...grant(initialHostLedgerState(), NIGHT),
      ledger: { windowOpensAt: NIGHT, spentMs: 50_000, overrunMs: 0, canaries: 1 },
    };
    const after = applyRelease(
      held,
      { leaseId: 'lease-1', downtimeMs: 25_000, outcome: 'restored' },
      policy,
      NIGHT + 60_000,
    );
    assert.equal(after.ledger.spentMs, 75_000);
    assert.equal(after.ledger.overrunMs, 15_000);
    assert.equal(budgetLeftMs(after, policy, window, NIGHT + 61_000), 0);
  });

  test('the budget resets when the next window opens', () => {
    const spent = {
      ...initialHostLedgerState(),
      ledger: { windowOpensAt: NIGHT, spentMs: 60_000, overrunMs: 5000, canaries: 2 },
    };
    assert.equal(budgetLeftMs(spent, policy, window, NIGHT + HOUR), 0);
    assert.equal(budgetLeftMs(spent, policy, window, NIGHT + 24 * HOUR), 60_000);
  });

  test('a release of another lease changes nothing; a failed restore latches', () => {
    const held = grant(initialHostLedgerState(), NIGHT);
    assert.equal(
      applyRelease(held, { leaseId: 'other', downtimeMs: 1, outcome: 'promoted' }, policy, NIGHT),
      held,
    );
    const failed = applyRelease(
      held,
      { leaseId: 'lease-1', downtimeMs: 40_000, outcome: 'restore_failed', restoreFailure: 'stays down' },
      policy,
      NIGHT + 1,
    );
    assert.deepEqual(failed.restoreFailure, { at: NIGHT + 1, kind: 'vllm_oom', message: 'stays down' });
  });

  test('a lease returned unused charges nothing and starts no cooldown', () => {
    const held = grant(initialHostLedgerState(), NIGHT);
    const after = applyRelease(
      held,
      { leaseId: 'lease-1', downtimeMs: 0, outcome: 'not_started' },
      policy,
      NIGHT + 1,
    );
    assert.equal(after.cooldownUntil, null);
    assert.equal(after.ledger.canaries, 0);
  });
});
