// The coordinator's steps, pure: what each lease event does to the host, which decisions it records in
// which order, what it counts and which command it asks for. The workflow only applies them
// (test/workflows/ runs them on a Temporal server; test/replay/ checks that older histories still replay).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type HostLedgerState, RULES_0_3, initialHostLedgerState } from '../../src/domain/host-ledger.js';
import {
  expiryNeedsRecovery,
  expiryStep,
  operatorLeaseStep,
  releaseStep,
  requestStep,
  withdrawStep,
} from '../../src/domain/host-steps.js';
import { HOUR, NIGHT, policy, request, window } from '../support/host-fixtures.js';

const codes = (s: { decisions: { event: { code: string } }[] }) => s.decisions.map((d) => d.event.code);

function granted(now = NIGHT): HostLedgerState {
  const s = requestStep(initialHostLedgerState(), request, policy, window, now, 'lease-1', RULES_0_3);
  assert.ok(s.granted);
  return s.state;
}

describe('requestStep', () => {
  test('a grant holds the lease, records lease_granted and counts no refusal', () => {
    const s = requestStep(initialHostLedgerState(), request, policy, window, NIGHT, 'lease-1', RULES_0_3);
    assert.equal(s.state.lease?.leaseId, 'lease-1');
    assert.deepEqual(codes(s), ['lease_granted']);
    assert.equal(s.refusal, null);
    assert.equal(s.answer.granted, true);
    assert.equal(s.report, null);
  });

  test('outside the window: refused, counted by its code, nothing held', () => {
    const s = requestStep(
      initialHostLedgerState(),
      request,
      policy,
      window,
      NIGHT - 2 * HOUR,
      'x',
      RULES_0_3,
    );
    assert.equal(s.state.lease, null);
    assert.deepEqual(codes(s), ['lease_refused']);
    assert.equal(s.refusal, 'outside_window');
    assert.equal(s.answer.granted, false);
    assert.equal(s.granted, null);
  });

  test('the holder asking again gives its unused lease up first (0.3 rules)', () => {
    const s = requestStep(
      granted(),
      { ...request, requestId: 'r2' },
      policy,
      window,
      NIGHT + 1000,
      'lease-2',
      RULES_0_3,
    );
    assert.deepEqual(codes(s), ['lease_given_up', 'lease_granted']);
    assert.equal(s.state.lease?.leaseId, 'lease-2');
  });
});

describe('releaseStep', () => {
  test('charges the downtime, starts the cooldown and asks for the budget report', () => {
    const s = releaseStep(
      granted(),
      { leaseId: 'lease-1', downtimeMs: 25_000, outcome: 'promoted' },
      policy,
      NIGHT + 60_000,
      'gpu-1',
    );
    assert.equal(s.state.lease, null);
    assert.equal(s.state.ledger.spentMs, 25_000);
    assert.equal(s.state.cooldownUntil, NIGHT + 60_000 + 6 * HOUR);
    assert.deepEqual(codes(s), ['lease_released']);
    assert.equal(s.overrunAddedMs, 0);
    assert.equal(s.report?.budgetLeftMs, 35_000);
    assert.equal(s.report?.event.outcome, 'promoted');
    assert.equal(s.report?.host, 'gpu-1');
  });

  test('a restore past the budget is charged all the same; the overrun is counted', () => {
    const s = releaseStep(
      granted(),
      { leaseId: 'lease-1', downtimeMs: 95_000, outcome: 'restored' },
      policy,
      NIGHT + 120_000,
      'gpu-1',
    );
    assert.equal(s.state.ledger.spentMs, 95_000);
    assert.equal(s.overrunAddedMs, 35_000);
    assert.equal(s.report?.budgetLeftMs, 0);
  });

  test('a failed restore latches the host and records why canaries stopped, after the release', () => {
    const s = releaseStep(
      granted(),
      {
        leaseId: 'lease-1',
        downtimeMs: 40_000,
        outcome: 'restore_failed',
        restoreFailure: 'health check timed out',
      },
      policy,
      NIGHT + 60_000,
      'gpu-1',
    );
    assert.deepEqual(codes(s), ['lease_released', 'canaries_stopped']);
    assert.equal(s.state.restoreFailure?.message, 'health check timed out');
    assert.equal(s.report?.event.restoreFailure, 'health check timed out');
  });

  test('a release of another lease changes nothing and reports nothing', () => {
    const before = granted();
    const s = releaseStep(
      before,
      { leaseId: 'stale', downtimeMs: 1, outcome: 'promoted' },
      policy,
      NIGHT,
      'gpu-1',
    );
    assert.equal(s.state, before);
    assert.deepEqual(codes(s), ['release_ignored']);
    assert.equal(s.report, null);
  });
});

describe('expiryStep', () => {
  const held = () => {
    const state = granted();
    return { state, lease: state.lease! };
  };

  test('charges the predicted downtime plus the restore of the abandoned canary', () => {
    const { state, lease } = held();
    const s = expiryStep(
      state,
      lease,
      { action: 'restored', downtimeMs: 12_000 },
      policy,
      NIGHT + 30 * 60_000,
    );
    assert.equal(s.state.lease, null);
    assert.equal(s.state.ledger.spentMs, 32_000);
    assert.ok(s.state.cooldownUntil !== null);
    assert.deepEqual(codes(s), ['lease_expired']);
  });

  test('a failed restore of the abandoned canary latches the host', () => {
    const { state, lease } = held();
    const s = expiryStep(
      state,
      lease,
      { action: 'restore_failed', failure: 'boom', host: 'gpu-1' },
      policy,
      NIGHT + HOUR,
    );
    assert.equal(s.state.restoreFailure?.message, 'boom');
    assert.equal(s.state.ledger.spentMs, 20_000);
  });

  test('only a canary lease under the 0.2 rules is recovered; an operator change never is', () => {
    const { lease } = held();
    assert.equal(expiryNeedsRecovery(lease, true), true);
    assert.equal(expiryNeedsRecovery(lease, false), false);
    assert.equal(expiryNeedsRecovery({ ...lease, holderWorkflowId: 'operator:alice' }, true), false);
  });
});

describe('withdrawStep and operatorLeaseStep', () => {
  test('an undeliverable grant is withdrawn only while it is still the lease held', () => {
    const state = granted();
    assert.deepEqual(codes(withdrawStep(state, 'lease-1', request.holderWorkflowId)), ['lease_withdrawn']);
    assert.equal(withdrawStep(state, 'lease-1', request.holderWorkflowId).state.lease, null);
    assert.deepEqual(codes(withdrawStep(state, 'other', request.holderWorkflowId)), []);
  });

  test("an operator's lease outside the window is granted and recorded with the person", () => {
    const s = operatorLeaseStep(
      initialHostLedgerState(),
      {
        requestId: 'o1',
        purpose: 'rollback',
        by: 'alice',
        reason: 'bad promotion',
        predictedDowntimeMs: 30_000,
      },
      policy,
      window,
      NIGHT - 5 * HOUR,
      'op-1',
    );
    assert.equal(s.answer.granted, true);
    assert.equal(s.state.lease?.holderWorkflowId, 'operator:alice');
    assert.deepEqual(
      s.decisions.map((d) => [d.event.code, d.by]),
      [['operator_lease_granted', 'alice']],
    );
  });

  test("an operator's lease while a canary holds the host is refused as busy and counted", () => {
    const s = operatorLeaseStep(
      granted(),
      { requestId: 'o1', purpose: 'rollback', by: 'alice', reason: 'r', predictedDowntimeMs: 30_000 },
      policy,
      window,
      NIGHT + 1000,
      'op-1',
    );
    assert.equal(s.answer.granted, false);
    assert.equal(s.refusal, 'busy');
    assert.equal(s.state.lease?.leaseId, 'lease-1', 'the canary keeps its lease');
  });
});
