import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type HostLedgerState,
  type OperatorLeaseRequest,
  RULES_0_1,
  RULES_0_2,
  RULES_0_3,
  answerLeaseRequest,
  applyRelease,
  budgetLeftMs,
  decideLease,
  decideOperatorLease,
  hostFiguresAt,
  initialHostLedgerState,
} from '../../src/domain/host-ledger.js';
import { HOUR, NIGHT, policy, request, window } from '../support/host-fixtures.js';

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
      (s) => {
        const held = grant(s, NIGHT);
        return held.lease
          ? { ...held, lease: { ...held.lease, holderWorkflowId: 'kloros-healing/gpu-1/kv_cache' } }
          : held;
      },
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

  test('a holder that asks again while it holds the lease gives up the unused lease (0.3); under 0.2 busy', () => {
    const held = grant(initialHostLedgerState(), NIGHT);
    const again = { ...request, requestId: 'r2' };
    const regranted = answerLeaseRequest(held, again, policy, window, NIGHT + 1000, 'lease-2', RULES_0_3);
    assert.ok(regranted.verdict.granted);
    assert.equal(regranted.state.lease?.leaseId, 'lease-2', 'the new lease replaces the unused one');
    assert.equal(regranted.answer.leaseId, 'lease-2');
    assert.equal(regranted.state.ledger.spentMs, 0, 'the unused lease is charged nothing');
    assert.equal(regranted.givenUp?.leaseId, 'lease-1', 'and said to be given up');
    // A request the host now refuses still gives the unused lease up: it must not hold the host till its TTL.
    const tooLong = { ...again, requestId: 'r3', predictedDowntimeMs: 10 * 60_000 };
    const refused = answerLeaseRequest(held, tooLong, policy, window, NIGHT + 1000, 'lease-3', RULES_0_3);
    assert.ok(!refused.verdict.granted && refused.verdict.code === 'budget');
    assert.equal(refused.state.lease, null);
    const before = answerLeaseRequest(held, again, policy, window, NIGHT + 1000, 'lease-2', RULES_0_2);
    assert.ok(!before.verdict.granted && before.verdict.code === 'busy');
    assert.equal(before.state.lease?.leaseId, held.lease?.leaseId);
    assert.equal(before.givenUp, null);
    // Another holder is busy either way.
    const other = { ...again, holderWorkflowId: 'kloros-healing/gpu-1/vllm_oom-other-run' };
    const busy = answerLeaseRequest(held, other, policy, window, NIGHT + 1000, 'x', RULES_0_3);
    assert.ok(!busy.verdict.granted && busy.verdict.code === 'busy');
  });

  test('busy is retried within the window; cooldown retries when it ends inside the window', () => {
    const busy = decideLease(
      grant(initialHostLedgerState(), NIGHT),
      { ...request, holderWorkflowId: 'kloros-healing/gpu-1/other' },
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

describe('0.2 lease rules (issue 13)', () => {
  const at = NIGHT + 10 * 60_000;
  const ask = (kind: string, state = initialHostLedgerState(), p = policy) =>
    decideLease(state, { ...request, kind }, p, window, at, 'lease-x');

  test('only kinds that heal get a canary lease; the 0.1 rules (old histories) still grant any', () => {
    for (const kind of ['gpu_xid', 'made_up_kind']) {
      const verdict = ask(kind);
      assert.equal(verdict.granted, false);
      if (!verdict.granted) assert.equal(verdict.code, 'kind_cannot_heal');
      assert.ok(
        decideLease(initialHostLedgerState(), { ...request, kind }, policy, window, at, 'l', RULES_0_1)
          .granted,
      );
    }
    assert.ok(ask('vllm_oom').granted);
    assert.ok(
      ask('my_mem_alert', initialHostLedgerState(), { ...policy, kindActions: { my_mem_alert: 'heal' } })
        .granted,
    );
  });

  test('the host-wide cap counts canaries of every kind over 7 days, and frees up as they age', () => {
    const p = { ...policy, hostMaxCanaries7d: 2 };
    const day = 24 * HOUR;
    const state = { ...initialHostLedgerState(), canaryStarts: [at - 6 * day, at - 2 * day] };
    const refused = decideLease(state, request, p, window, at, 'l');
    assert.equal(refused.granted, false);
    if (!refused.granted) {
      assert.equal(refused.code, 'host_canary_cap');
      assert.match(refused.reason, /^2 canaries on this host in 7 days \(all kinds\)/);
    }
    assert.ok(
      decideLease(state, request, p, window, at + day, 'l').granted,
      'the oldest is 7 days old a day later',
    );
    assert.ok(decideLease(state, request, p, window, at, 'l', RULES_0_1).granted);
  });

  test('a released canary is remembered for the cap; a lease that never started is not', () => {
    const held = grant(initialHostLedgerState(), at);
    const after = applyRelease(
      held,
      { leaseId: 'lease-1', downtimeMs: 10_000, outcome: 'restored' },
      policy,
      at + 60_000,
    );
    assert.deepEqual(after.canaryStarts, [at]);
    const notStarted = applyRelease(
      held,
      { leaseId: 'lease-1', downtimeMs: 0, outcome: 'not_started' },
      policy,
      at + 60_000,
    );
    assert.deepEqual(notStarted.canaryStarts ?? [], []);
  });
});

describe('operator leases (healctl rollback)', () => {
  const op: OperatorLeaseRequest = {
    requestId: 'op-1',
    purpose: 'rollback',
    by: 'alice',
    reason: 'slow prompts',
    predictedDowntimeMs: 30_000,
  };
  const noon = NIGHT + 9 * HOUR;

  test('refused while a canary holds the host, with what to do', () => {
    const held = grant(initialHostLedgerState(), NIGHT + 60_000);
    const verdict = decideOperatorLease(held, op, policy, window, NIGHT + 120_000, 'op-lease');
    assert.equal(verdict.granted, false);
    if (!verdict.granted) {
      assert.equal(verdict.code, 'busy');
      assert.match(verdict.reason, /^a vllm_oom canary holds the host since 03:01 UTC .*healctl cancel$/);
    }
  });

  test('granted outside the window, while paused or latched; charged to the next window, cooldown started', () => {
    const state: HostLedgerState = {
      ...initialHostLedgerState(),
      paused: { at: noon, by: 'bob', reason: 'x' },
      restoreFailure: { at: noon, kind: 'vllm_oom', message: 'down' },
    };
    const verdict = decideOperatorLease(state, op, policy, window, noon, 'op-lease');
    assert.ok(verdict.granted);
    if (!verdict.granted) return;
    assert.equal(verdict.lease.windowOpensAt, NIGHT + 24 * HOUR, 'the next window pays for it');
    const held = { ...state, lease: verdict.lease };
    const released = applyRelease(
      held,
      { leaseId: 'op-lease', downtimeMs: 12_000, outcome: 'rolled_back' },
      policy,
      noon + 60_000,
    );
    assert.equal(released.lease, null);
    assert.equal(
      budgetLeftMs(released, policy, window, noon + 120_000),
      48_000,
      'the next window starts with 48 s',
    );
    assert.equal(
      budgetLeftMs(released, policy, window, NIGHT + 24 * HOUR + 60_000),
      48_000,
      'and keeps it when it opens',
    );
    assert.equal(released.cooldownUntil, noon + 60_000 + 6 * HOUR);
    assert.deepEqual(released.canaryStarts ?? [], [], 'a rollback is not a canary for the cap');
    assert.equal(
      released.restoreFailure?.message,
      'down',
      'a good rollback does not clear the latch by itself',
    );
    const failed = applyRelease(
      held,
      { leaseId: 'op-lease', downtimeMs: 12_000, outcome: 'rollback_failed', restoreFailure: 'unhealthy' },
      policy,
      noon + 60_000,
    );
    assert.equal(failed.restoreFailure?.message, 'unhealthy', 'a failed rollback latches the host');
  });
});

describe('hostFiguresAt', () => {
  test('the figures at the reader’s time, not at the coordinator’s last task', () => {
    const state = {
      ledger: { windowOpensAt: NIGHT, spentMs: 50_000, overrunMs: 0, canaries: 1 },
      cooldownUntil: NIGHT + 2 * HOUR,
    };
    const inside = hostFiguresAt(state, policy, NIGHT + HOUR);
    assert.deepEqual(inside, {
      budgetLeftMs: 10_000,
      budgetTotalMs: 60_000,
      cooldownLeftMs: HOUR,
      windowOpen: true,
    });
    const nextNight = hostFiguresAt(state, policy, NIGHT + 24 * HOUR + 60_000);
    assert.deepEqual(nextNight, {
      budgetLeftMs: 60_000,
      budgetTotalMs: 60_000,
      cooldownLeftMs: 0,
      windowOpen: true,
    });
  });
});
