// A GPU host driven through the pure transitions alone: one escalation state per kind (healing-escalation,
// healing-plan, healing-attempt, healing-canary) and the host's ledger (host-ledger), fed a random schedule
// of symptoms, operator actions, predictions and canary outcomes by a discrete-event loop that does what
// the two workflow loops do, without Temporal. It records a journal of what the host did; the property
// test (test/unit/host-properties.test.ts) checks the design's invariants on it over thousands of seeds.
import { attemptStep, leaseStep } from '../../src/domain/healing-attempt.js';
import {
  type RunningCanary,
  canaryFailed,
  canaryPromoted,
  canaryRestored,
  canaryStarted,
  restoreFailed,
} from '../../src/domain/healing-canary.js';
import {
  type EscalationRules,
  type EscalationState,
  clearEscalation,
  countSymptom,
  forceEscalation,
  lapseIfExpired,
  noteOffered,
  stateFromCarried,
} from '../../src/domain/healing-escalation.js';
import { planAfterAttempt, planNext } from '../../src/domain/healing-plan.js';
import type { HealingPhase } from '../../src/domain/healing-state.js';
import {
  type HostLedgerState,
  type LeaseDecision,
  type LeaseRelease,
  RULES_0_3,
  answerLeaseRequest,
  applyRelease,
  initialHostLedgerState,
  leaseExpired,
} from '../../src/domain/host-ledger.js';
import {
  type MaintenanceWindow,
  currentWindow,
  parseMaintenanceWindow,
} from '../../src/domain/maintenance-window.js';
import type { HealingPolicy } from '../../src/domain/policy.js';
import type { CandidateConfig, Recommendation } from '../../src/domain/recommendation.js';
import { SymptomWindow } from '../../src/domain/symptom-window.js';
import type { Prng } from './prng.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** What happened on the host, in order: what the invariants are checked against. */
export type JournalEntry =
  | {
      type: 'canary';
      kind: string;
      start: number;
      /** When its lease was released (the canary, and the restore after a failure, are over). */
      end: number;
      predictedMs: number;
      /** Budget left as the lease was granted, and the window it is charged to. */
      budgetLeftMs: number;
      windowOpensAt: number;
      /** Attempts of the escalation, this one included. */
      attempts: number;
      outcome: 'promoted' | 'restored' | 'restore_failed';
      chargedMs: number;
      /** A canary that did not pass was followed by a restore (the release says so). */
      restoreRan: boolean;
    }
  | { type: 'symptom'; kind: string; at: number; eventTime: number; id: string | undefined }
  | { type: 'clear' | 'promotion'; kind: string; at: number }
  | { type: 'count'; kind: string; at: number; count: number }
  | { type: 'pause' | 'resume' | 'ack'; at: number };

export interface ModelSchedule {
  seed: number;
  policy: HealingPolicy;
  window: MaintenanceWindow;
  kinds: string[];
  /** The host at the end, and every kind's state. */
  host: HostLedgerState;
  states: Map<string, EscalationState>;
  journal: JournalEntry[];
  /** Time at the end of the schedule. */
  end: number;
  /** The host's refusals by code, and the healing side's own refusals: to see what a run exercised. */
  refusals: Record<string, number>;
}

interface Kind {
  kind: string;
  state: EscalationState;
  rules: EscalationRules;
  phase: HealingPhase;
  runStartedAt: number;
  announcedOpening: number | null;
  /** When its loop looks again (null: only when a message wakes it). */
  wakeAt: number | null;
  /** Its workflow ended (a kind that only counts, idle for a day): the next message starts a new one. */
  ended: boolean;
  /** A canary under way: when it ends and how. */
  canary: {
    run: RunningCanary;
    endsAt: number;
    passes: boolean;
    restoreOk: boolean;
    actualMs: number;
    restoreMs: number;
  } | null;
}

type HostEvent = { at: number; type: 'pause' | 'resume' | 'ack' };
type KindEvent =
  | { at: number; type: 'symptom'; kind: string; id: string | undefined; eventTime: number }
  | { at: number; type: 'clear' | 'force'; kind: string };
type ExternalEvent = HostEvent | KindEvent;

const isHostEvent = (e: ExternalEvent): e is HostEvent => !('kind' in e);

/** A random policy whose window, budget and cooldown make canaries meet each other often. */
export function randomPolicy(r: Prng): HealingPolicy {
  const open = r.int(0, 23);
  const length = r.pick([1, 2, 4, 8]);
  const hh = (h: number) => String(h % 24).padStart(2, '0');
  return {
    threshold24h: r.int(1, 4),
    escalationFlagTtlSeconds: r.pick([1800, 4 * 3600, 12 * 3600, 48 * 3600]),
    maintenanceWindow: `${hh(open)}:00-${hh(open + length)}:${r.pick(['00', '30'])}`,
    maintenanceTimeZone: 'UTC',
    maxDowntimeSeconds: r.pick([30, 60, 120, 600]),
    defaultMode: 'predictive',
    cooldownHours: r.pick([0, 0.25, 1, 6]),
    maxAttempts: r.int(1, 3),
    soakSeconds: 0,
    leaseTtlSeconds: 1800,
    predictIntervalSeconds: r.pick([0, 300, 3600]),
    historyEventsLimit: 10_000,
    kindActions: r.chance(0.3) ? { vllm_start: 'heal' } : {},
    hostMaxCanaries7d: r.int(1, 6),
  };
}

function randomRecommendation(r: Prng, now: number): Recommendation | null {
  if (r.chance(0.05)) return null; // the prediction failed
  const n = r.int(0, 3);
  const candidates: CandidateConfig[] = Array.from({ length: n }, (_, i) => ({
    id: `gpu-memory-utilization=0.${90 - i * 2}`,
    changes: { 'gpu-memory-utilization': 0.9 - i * 0.02 },
    predictedVramMb: 70_000,
    headroomMb: 2_000,
    fits: r.chance(0.8),
    predictedDowntimeMs: r.pick([5_000, 20_000, 45_000, 90_000, 300_000]),
    givesUp: 'KV cache',
    why: 'model',
  }));
  return { at: new Date(now).toISOString(), basis: 'model', candidates };
}

function schedule(r: Prng, kinds: string[], start: number, days: number): ExternalEvent[] {
  const events: ExternalEvent[] = [];
  const ids: string[] = [];
  const n = r.int(5, 60);
  for (let i = 0; i < n; i++) {
    const at = start + r.int(0, days * DAY);
    const kind = r.pick(kinds);
    const roll = r.next();
    if (roll < 0.78) {
      // Fresh, redelivered or id-less; now, a little or a day and more in the past.
      const id = r.chance(0.15) && ids.length > 0 ? r.pick(ids) : r.chance(0.2) ? undefined : `s${i}`;
      if (id !== undefined) ids.push(id);
      const eventTime =
        at -
        r.weighted([
          [6, 0],
          [2, r.int(1, 6) * HOUR],
          [1, DAY + r.int(0, 3) * HOUR],
        ] as const);
      events.push({ at, type: 'symptom', kind, id, eventTime });
      // Bursts: the same incident reported again minutes later.
      if (r.chance(0.3))
        events.push({ at: at + r.int(1, 20) * MINUTE, type: 'symptom', kind, id: `b${i}`, eventTime: at });
    } else if (roll < 0.86) events.push({ at, type: r.chance(0.5) ? 'clear' : 'force', kind });
    else events.push({ at, type: r.pick(['pause', 'resume', 'ack'] as const) });
  }
  return events.sort((a, b) => a.at - b.at);
}

/** Run one random schedule through the pure transitions. */
export function runModel(r: Prng): ModelSchedule {
  const policy = randomPolicy(r);
  const window = parseMaintenanceWindow(policy.maintenanceWindow, policy.maintenanceTimeZone);
  const kinds = r.pick([
    ['vllm_oom'],
    ['vllm_oom', 'vllm_start'],
    ['vllm_oom', 'gpu_xid'],
    ['vllm_oom', 'vllm_start', 'odd'],
  ]);
  const start = Date.UTC(2026, 0, 1) + r.int(0, 365) * DAY + r.int(0, DAY);
  const days = r.int(1, 6);
  const end = start + days * DAY;
  const events = schedule(r, kinds, start, days);
  let host = initialHostLedgerState();
  const journal: JournalEntry[] = [];
  const fresh = (kind: string, now: number): Kind => ({
    kind,
    state: stateFromCarried(null, new SymptomWindow()),
    rules: { kind, policy, window, safeRules: true },
    phase: 'starting',
    runStartedAt: now,
    announcedOpening: null,
    wakeAt: now,
    ended: false,
    canary: null,
  });
  const ks = new Map(kinds.map((k) => [k, fresh(k, start)]));
  let leaseSeq = 0;
  const refusals: Record<string, number> = {};

  /** One pass of a HealingWorkflow's loop for `k` at `now` (until it waits or starts a canary). */
  const loop = (k: Kind, now: number): void => {
    for (let guard = 0; guard < 20; guard++) {
      const { state, rules } = k;
      lapseIfExpired(state, rules, now);
      noteOffered(state, rules, currentWindow(window, now));
      const step = planNext(state, rules, now, {
        phase: k.phase,
        runStartedAt: k.runStartedAt,
        announcedOpening: k.announcedOpening,
      });
      if (step.type === 'predict') {
        state.lastPredictedAt = now;
        state.symptomsSincePrediction = false;
        state.recommendation = randomRecommendation(r, now);
        continue;
      }
      if (step.type === 'wait') {
        if (step.announce) k.announcedOpening = step.announce.opensAt;
        k.phase = step.phase;
        k.wakeAt = step.until;
        return;
      }
      if (step.type === 'end') {
        if (state.symptoms.count(now) === 0) {
          ks.set(k.kind, { ...fresh(k.kind, now), wakeAt: null, ended: true });
          return;
        }
        k.wakeAt = now + MINUTE;
        return;
      }
      const retryAt = attempt(k, step.occurrence, now);
      if (k.canary !== null) return;
      const after = planAfterAttempt(state, rules, retryAt, now);
      if (after?.type === 'wait') {
        k.phase = after.phase;
        k.wakeAt = after.until;
        return;
      }
    }
    throw new Error(`seed ${r.seed}: ${k.kind}'s loop did not settle at ${new Date(now).toISOString()}`);
  };

  /** The window is open: predict, ask the host, start the canary when granted. */
  const attempt = (
    k: Kind,
    occurrence: { opensAt: number; closesAt: number },
    now: number,
  ): number | null => {
    const rec = randomRecommendation(r, now);
    if (rec !== null) k.state.recommendation = rec;
    const step = attemptStep(k.state, k.rules, rec, occurrence, now);
    if (step.type === 'stop') return step.retryAt;
    const candidate = step.candidate;
    const leaseId = `lease-${++leaseSeq}`;
    const request = {
      requestId: `req-${leaseSeq}`,
      holderWorkflowId: `kloros-heal/h/${k.kind}`,
      kind: k.kind,
      predictedDowntimeMs: candidate.predictedDowntimeMs,
    };
    const decided = answerLeaseRequest(host, request, policy, window, now, leaseId, RULES_0_3);
    const { verdict } = decided;
    if (!verdict.granted) refusals[verdict.code] = (refusals[verdict.code] ?? 0) + 1;
    host = decided.state;
    const answer: LeaseDecision | null = r.chance(0.03) ? null : decided.answer; // the answer never came
    // A lost answer to a grant leaves the lease held: the holder's next request gets it back (0.3), or it expires.
    const asked = answer === null ? { answer: null, waitedMs: 60_000, failure: 'model' } : { answer };
    const next = leaseStep(k.state, k.rules, asked, occurrence, now);
    if (next.type === 'stop') {
      if (next.giveBack !== null)
        host = applyRelease(
          host,
          { leaseId: next.giveBack, downtimeMs: 0, outcome: 'not_started' },
          policy,
          now,
        );
      return next.retryAt;
    }
    const run: RunningCanary = {
      candidate,
      leaseId: next.leaseId,
      startedAt: now,
      mode: 'canary',
      result: null,
    };
    canaryStarted(k.state, run, next.budgetLeftMs, now);
    // The real downtime: mostly as predicted, sometimes longer (an overrun the restore must not hide).
    const actualMs = Math.round(candidate.predictedDowntimeMs * r.pick([0.5, 1, 1, 1.5, 3]));
    const passes = r.chance(0.6);
    const restoreMs = passes ? 0 : r.pick([5_000, 30_000, 120_000]);
    k.canary = {
      run,
      endsAt: now + actualMs + restoreMs,
      passes,
      restoreOk: r.chance(0.85),
      actualMs,
      restoreMs,
    };
    return null;
  };

  /** The canary's activity and any restore are over: the transitions, then the release to the host. */
  const finish = (k: Kind, now: number): void => {
    const c = k.canary;
    if (c === null) return;
    const lease = host.lease;
    let release: LeaseRelease;
    if (c.passes) {
      release = canaryPromoted(
        k.state,
        c.run,
        { outcome: 'passed', reason: 'healthy', downtimeMs: c.actualMs, measuredVramMb: null },
        now,
      );
      journal.push({ type: 'promotion', kind: k.kind, at: now });
    } else {
      c.run.result = {
        outcome: 'failed',
        reason: 'not healthy',
        downtimeMs: c.actualMs,
        measuredVramMb: null,
      };
      const failed = canaryFailed(k.state, c.run, null, now);
      release = c.restoreOk
        ? canaryRestored(k.state, c.run, failed, c.restoreMs, false, now)
        : restoreFailed(k.state, c.run, failed, 'restart command failed', c.restoreMs, 'h', now);
    }
    journal.push({
      type: 'canary',
      kind: k.kind,
      start: c.run.startedAt,
      end: now,
      predictedMs: c.run.candidate.predictedDowntimeMs,
      budgetLeftMs: lease?.budgetLeftMs ?? -1,
      windowOpensAt: lease?.windowOpensAt ?? -1,
      attempts: k.state.attempts,
      outcome:
        release.outcome === 'promoted'
          ? 'promoted'
          : release.outcome === 'restore_failed'
            ? 'restore_failed'
            : 'restored',
      chargedMs: release.downtimeMs,
      restoreRan: !c.passes && release.canary?.restoreDowntimeMs !== null,
    });
    host = applyRelease(host, release, policy, now);
    k.canary = null;
    const after = planAfterAttempt(k.state, k.rules, null, now);
    k.wakeAt = after?.type === 'wait' ? after.until : now;
  };

  const message = (e: ExternalEvent): void => {
    const now = e.at;
    if (isHostEvent(e)) {
      if (e.type === 'pause') host = { ...host, paused: { at: now, by: 'op', reason: 'model' } };
      else if (e.type === 'resume') host = { ...host, paused: null };
      else host = { ...host, restoreFailure: null };
      journal.push({ type: e.type, at: now });
      return;
    }
    const k = ks.get(e.kind);
    if (k === undefined) return;
    // A message to a workflow that ended starts a new one (update-with-start), whose loop runs at once.
    let wake = k.ended;
    k.ended = false;
    if (e.type === 'symptom') {
      const symptom = { kind: e.kind, ...(e.id ? { id: e.id } : {}), eventTime: e.eventTime };
      const counted = countSymptom(k.state, k.rules, symptom, now);
      if (counted.outcome === 'counted')
        journal.push({ type: 'symptom', kind: e.kind, at: now, eventTime: e.eventTime, id: e.id });
      wake ||= counted.wake;
    } else if (e.type === 'clear') {
      clearEscalation(k.state, { by: 'op', reason: 'model' }, now);
      journal.push({ type: 'clear', kind: e.kind, at: now });
      wake = true;
    } else {
      wake = forceEscalation(k.state, k.rules, { by: 'op', reason: 'model' }, now) === null || wake;
    }
    journal.push({ type: 'count', kind: e.kind, at: now, count: k.state.symptoms.count(now) });
    if (wake && k.canary === null) k.wakeAt = now;
  };

  /** A lease nobody runs a canary under (its answer was lost and its holder moved on) expires at its TTL. */
  const orphanLease = () => {
    const lease = host.lease;
    return lease !== null && ![...ks.values()].some((k) => k.canary?.run.leaseId === lease.leaseId)
      ? lease
      : null;
  };

  let now = start;
  let next = 0;
  for (let guard = 0; guard < 100_000; guard++) {
    // The earliest of: the next message, a canary ending, a kind's wake-up, an orphaned lease's expiry.
    let at = Math.min(
      events[next]?.at ?? Number.POSITIVE_INFINITY,
      orphanLease()?.expiresAt ?? Number.POSITIVE_INFINITY,
    );
    for (const k of ks.values()) at = Math.min(at, k.canary?.endsAt ?? k.wakeAt ?? Number.POSITIVE_INFINITY);
    if (!(at <= end)) break;
    now = Math.max(now, at);
    const orphan = orphanLease();
    if (orphan !== null && leaseExpired(orphan, now)) {
      // The coordinator's expiry: what the holder was allowed to spend is charged, the cooldown starts.
      host = applyRelease(
        host,
        { leaseId: orphan.leaseId, downtimeMs: orphan.predictedDowntimeMs, outcome: 'restored' },
        policy,
        now,
      );
      refusals.expired = (refusals.expired ?? 0) + 1;
      continue;
    }
    const e = events[next];
    if (e !== undefined && e.at <= now) {
      next++;
      message(e);
      continue;
    }
    for (const k of [...ks.values()]) {
      const current = ks.get(k.kind)!;
      if (current.canary !== null) {
        if (current.canary.endsAt <= now) finish(current, now);
      } else if (current.wakeAt !== null && current.wakeAt <= now) loop(current, now);
    }
  }
  return {
    seed: r.seed,
    policy,
    window,
    kinds,
    host,
    states: new Map([...ks].map(([k, v]) => [k, v.state])),
    journal,
    end,
    refusals,
  };
}
