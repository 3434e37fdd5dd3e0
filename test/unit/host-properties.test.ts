// The design's invariants (docs/testing.md) over ≥ 10,000 random schedules of one GPU host, driven through
// the pure transitions only (test/support/host-model.ts): one canary at a time, never outside the window,
// the budget never knowingly overspent, the cooldown, the attempt and host caps, a restore after every
// failed canary, nothing while latched or paused, only kinds that heal, and 24 h counts exact. The
// time-skipping random run (test/chaos/random-schedules.test.ts) keeps what only a server can show.
//
//   node --import tsx --test test/unit/host-properties.test.ts
//   KLR_PROPERTY_SCHEDULES=100000 …     more schedules
//   KLR_PROPERTY_SEED=1234 …            one seed, with its journal printed
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { budgetTotalMs } from '../../src/domain/host-ledger.js';
import { kindAction } from '../../src/domain/kind-policy.js';
import { hostMaxCanariesOf } from '../../src/domain/policy.js';
import { WINDOW_MS } from '../../src/domain/symptom-window.js';
import { type JournalEntry, type ModelSchedule, runModel } from '../support/host-model.js';
import { prng } from '../support/prng.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

type Canary = Extract<JournalEntry, { type: 'canary' }>;

/** Whether `t` lies in the window `HH:MM-HH:MM` (UTC), computed without the code under test. */
function inWindow(text: string, t: number): boolean {
  const [open, close] = text.split('-').map((hhmm) => {
    const [h, m] = hhmm.split(':').map(Number);
    return (h ?? 0) * 60 + (m ?? 0);
  }) as [number, number];
  const minute = (t % DAY) / 60_000;
  return open < close ? minute >= open && minute < close : minute >= open || minute < close;
}

/** Every invariant the schedule broke, as sentences (empty: none). */
export function violations(m: ModelSchedule): string[] {
  const out: string[] = [];
  const { policy, journal } = m;
  const canaries = journal.filter((e): e is Canary => e.type === 'canary').sort((a, b) => a.start - b.start);
  const total = budgetTotalMs(policy);
  const at = (t: number) => new Date(t).toISOString();

  let previous: Canary | null = null;
  const spent = new Map<number, number>();
  for (const c of canaries) {
    const what = `${c.kind} canary at ${at(c.start)}`;
    if (previous !== null && c.start < previous.end)
      out.push(`${what} overlaps the ${previous.kind} canary of ${at(previous.start)}–${at(previous.end)}`);
    if (previous !== null && c.start < previous.end + policy.cooldownHours * HOUR)
      out.push(`${what} starts inside the cooldown after the canary that ended ${at(previous.end)}`);
    if (!inWindow(policy.maintenanceWindow, c.start))
      out.push(`${what} is outside ${policy.maintenanceWindow} UTC`);
    const before = spent.get(c.windowOpensAt) ?? 0;
    if (c.predictedMs > c.budgetLeftMs || c.predictedMs > total - before)
      out.push(
        `${what} predicted ${c.predictedMs} ms with ${total - before} ms of the budget left (lease said ${c.budgetLeftMs})`,
      );
    spent.set(c.windowOpensAt, before + c.chargedMs);
    if (c.attempts > policy.maxAttempts)
      out.push(`${what} is attempt ${c.attempts} of ${policy.maxAttempts}`);
    const week = canaries.filter((o) => o.start > c.start - 7 * DAY && o.start <= c.start).length;
    if (week > hostMaxCanariesOf(policy))
      out.push(`${what} is the ${week}th in 7 days (cap ${hostMaxCanariesOf(policy)})`);
    if (c.outcome !== 'promoted' && !c.restoreRan) out.push(`${what} failed and no restore followed`);
    if (kindAction(c.kind, policy.kindActions) !== 'heal') out.push(`${what}: ${c.kind} does not heal`);
    previous = c;
  }

  // Nothing starts while a failed restore is latched (until acknowledged) or while the host is paused.
  let latchedSince: number | null = null;
  let pausedSince: number | null = null;
  const events = [...journal].sort(
    (a, b) => ('start' in a ? a.start : a.at) - ('start' in b ? b.start : b.at),
  );
  for (const e of events) {
    if (e.type === 'canary') {
      if (latchedSince !== null)
        out.push(`${e.kind} canary at ${at(e.start)} while latched since ${at(latchedSince)}`);
      if (pausedSince !== null)
        out.push(`${e.kind} canary at ${at(e.start)} while paused since ${at(pausedSince)}`);
    } else if (e.type === 'ack') latchedSince = null;
    else if (e.type === 'pause') pausedSince = e.at;
    else if (e.type === 'resume') pausedSince = null;
  }
  for (const c of canaries) {
    // A latch starts when the failed restore is released; canaries that start later must see an ack first.
    if (c.outcome !== 'restore_failed') continue;
    const next = canaries.find((o) => o.start >= c.end);
    const ack = journal.find((e) => e.type === 'ack' && e.at >= c.end);
    if (next !== undefined && (ack === undefined || (ack.type === 'ack' && ack.at > next.start)))
      out.push(
        `${next.kind} canary at ${at(next.start)} after the failed restore of ${at(c.end)} and no ack`,
      );
  }

  // The 24 h count: symptoms counted since the kind's last clear or promotion, event time within 24 h.
  const since = new Map<string, Extract<JournalEntry, { type: 'symptom' }>[]>();
  for (const e of journal) {
    if (e.type === 'clear' || e.type === 'promotion') since.set(e.kind, []);
    else if (e.type === 'symptom') since.set(e.kind, [...(since.get(e.kind) ?? []), e]);
    else if (e.type === 'count') {
      const expected = (since.get(e.kind) ?? []).filter((s) => s.eventTime > e.at - WINDOW_MS).length;
      if (e.count !== expected) out.push(`${e.kind} counted ${e.count} at ${at(e.at)}, expected ${expected}`);
    }
  }
  const ledger = m.host.ledger;
  if (ledger.overrunMs !== Math.max(0, ledger.spentMs - total))
    out.push(`the ledger's overrun ${ledger.overrunMs} ms is not spent ${ledger.spentMs} − budget ${total}`);
  return out;
}

function schedules(): number[] {
  const one = process.env.KLR_PROPERTY_SEED?.trim();
  if (one) return [Number(one)];
  const n = Number(process.env.KLR_PROPERTY_SCHEDULES ?? '10000');
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`KLR_PROPERTY_SCHEDULES=${n}: expected a whole number ≥ 1`);
  return Array.from({ length: n }, (_, i) => i + 1);
}

test('the invariants hold over random schedules of one GPU host, through the pure transitions', () => {
  const seeds = schedules();
  const seen = {
    canaries: 0,
    promoted: 0,
    restored: 0,
    restoreFailed: 0,
    overrun: 0,
    refusals: {} as Record<string, number>,
  };
  for (const seed of seeds) {
    const m = runModel(prng(seed));
    if (seeds.length === 1) console.log(JSON.stringify({ policy: m.policy, journal: m.journal }, null, 1));
    const broken = violations(m);
    assert.deepEqual(broken, [], `seed ${seed} (replay: KLR_PROPERTY_SEED=${seed}): ${broken[0]}`);
    for (const e of m.journal) {
      if (e.type !== 'canary') continue;
      seen.canaries++;
      if (e.outcome === 'promoted') seen.promoted++;
      else if (e.outcome === 'restored') seen.restored++;
      else seen.restoreFailed++;
    }
    if (m.host.ledger.overrunMs > 0) seen.overrun++;
    for (const [code, n] of Object.entries(m.refusals)) seen.refusals[code] = (seen.refusals[code] ?? 0) + n;
  }
  console.log(`${seeds.length} schedules: ${JSON.stringify(seen)}`);
  if (seeds.length < 1000) return;
  // The schedules must reach what the invariants are about, or passing says nothing.
  assert.ok(seen.canaries > seeds.length / 4, `only ${seen.canaries} canaries`);
  assert.ok(seen.restored > 0 && seen.restoreFailed > 0 && seen.overrun > 0, JSON.stringify(seen));
  for (const code of ['busy', 'cooldown', 'budget', 'restore_failure_latched', 'paused', 'host_canary_cap'])
    assert.ok(
      (seen.refusals[code] ?? 0) > 0,
      `no lease was refused for ${code}: ${JSON.stringify(seen.refusals)}`,
    );
});

test('the checker sees a broken journal: overlap, window, cooldown, budget, latch, count', () => {
  const m = runModel(prng(1));
  const base = Date.UTC(2026, 5, 1);
  const [open] = m.policy.maintenanceWindow.split('-');
  const [h, mm] = (open ?? '00:00').split(':').map(Number);
  const inside = base + (h ?? 0) * HOUR + (mm ?? 0) * 60_000 + 60_000;
  const canary = (start: number, end: number, extra: Partial<Canary> = {}): Canary => ({
    type: 'canary',
    kind: 'vllm_oom',
    start,
    end,
    predictedMs: 1000,
    budgetLeftMs: 1_000_000,
    windowOpensAt: inside,
    attempts: 1,
    outcome: 'promoted',
    chargedMs: 1000,
    restoreRan: false,
    ...extra,
  });
  const broken = (journal: JournalEntry[]) =>
    violations({
      ...m,
      policy: { ...m.policy, cooldownHours: 1 },
      journal,
      host: { ...m.host, ledger: { ...m.host.ledger, spentMs: 0, overrunMs: 0 } },
    });
  assert.match(
    broken([canary(inside, inside + 5000), canary(inside + 1000, inside + 6000)]).join('\n'),
    /overlaps/,
  );
  assert.match(broken([canary(inside + 12 * HOUR + 1, inside + 12 * HOUR + 2)]).join('\n'), /outside/);
  assert.match(
    broken([canary(inside, inside + 5000), canary(inside + 10_000, inside + 20_000)]).join('\n'),
    /cooldown/,
  );
  assert.match(broken([canary(inside, inside + 5000, { predictedMs: 2_000_000 })]).join('\n'), /budget left/);
  assert.match(
    broken([canary(inside, inside + 5000, { outcome: 'restored' })]).join('\n'),
    /no restore followed/,
  );
  assert.match(
    broken([
      canary(inside - DAY, inside - DAY + 5000, { outcome: 'restore_failed', restoreRan: true }),
      canary(inside, inside + 5000),
    ]).join('\n'),
    /no ack/,
  );
  assert.match(
    broken([
      { type: 'symptom', kind: 'vllm_oom', at: inside, eventTime: inside, id: 'a' },
      { type: 'count', kind: 'vllm_oom', at: inside, count: 2 },
    ]).join('\n'),
    /counted 2 .* expected 1/,
  );
});
