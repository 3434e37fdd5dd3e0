// npm start's stage lines come from the decisions' codes: every way a canary is refused is a "refused"
// line, a legacy decision with the same words is not one, and the line says the rendered words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type DecisionEvent } from '../../src/domain/decision-codes.js';
import { type Decision, LEGACY_CODE, decisionOf } from '../../src/domain/decision-log.js';
import type { HealingStateView } from '../../src/workflows/healing-messages.js';
import { stagesBetween } from '../../scripts/start/stage-watcher.js';

const T = Date.UTC(2026, 10, 28, 3, 0, 0);

/** The part of a state view the stage watcher reads; nothing armed, no symptoms, no canary. */
function view(decisions: Decision[]): HealingStateView {
  return {
    decisions,
    count24h: 0,
    threshold: 3,
    armed: false,
    nextWindow: { openNow: false, text: 'opens 03:00 UTC' },
    lastCanary: null,
  } as unknown as HealingStateView;
}

const REFUSALS: DecisionEvent[] = [
  { code: 'canary_refused_no_fit', params: { considered: 4 } },
  { code: 'canary_refused_window_closing', params: { windowLeftMs: 30_000, predictedDowntimeMs: 90_000 } },
  {
    code: 'canary_refused_by_host',
    params: { reason: 'host paused by bob at 02:00 UTC: driver upgrade', refusal: 'paused' },
  },
];

test('every refused canary is a refused stage, in its rendered words', () => {
  REFUSALS.forEach((event, i) => {
    const d = decisionOf(event, T + i);
    assert.deepEqual(stagesBetween(view([]), view([d]), T), [
      { stage: 'refused', line: `canary refused: ${d.reason}` },
    ]);
  });
});

test('a canary start is a canary stage; decisions of other codes and legacy words are no stage', () => {
  const started = decisionOf(
    {
      code: 'canary_started',
      params: { candidateId: 'gmu-0.88', why: 'fits', predictedDowntimeMs: 40_000, budgetLeftMs: 60_000 },
    },
    T,
  );
  const legacy: Decision = {
    at: T + 1,
    code: LEGACY_CODE,
    topic: 'canary',
    taken: false,
    action: 'canary refused',
    reason: 'from 0.2',
  };
  const lapsed = decisionOf(
    { code: 'escalation_lapsed', params: { lastSymptomAt: T, tz: 'UTC', ttlMs: 1 } },
    T + 2,
  );
  assert.deepEqual(stagesBetween(null, view([started, legacy, lapsed]), T), [
    { stage: 'canary', line: `canary started: ${started.reason}` },
  ]);
});

test('a decision seen before is not said again; one before sinceMs is not said at all', () => {
  const refused = decisionOf(REFUSALS[0]!, T);
  assert.deepEqual(stagesBetween(view([refused]), view([refused]), T), []);
  assert.deepEqual(stagesBetween(null, view([refused]), T + 1), []);
});
