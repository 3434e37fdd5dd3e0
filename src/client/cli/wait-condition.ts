// What `healctl wait` waits for, read from one state query's answer. Pure (takes the wait's start), so
// each condition is unit-tested without a server.
import type { HealingStateView } from '../../workflows/healing-messages.js';

export const WAIT_CONDITIONS = ['armed', 'idle', 'promoted', 'restored'] as const;
export type WaitCondition = (typeof WAIT_CONDITIONS)[number];

export type WaitVerdict = { done: true; text: string } | { done: false; failed: string | null; now: string };

/** Phases in which nothing changes the service: no lease asked, no canary, no restore. */
const IDLE_PHASES: readonly HealingStateView['phase'][] = ['watching', 'waiting_for_window', 'blocked'];

/**
 * armed: the escalation is armed. idle: no canary or restore in flight. promoted / restored: a canary that
 * ended after the wait began ended so; one that ended otherwise fails the wait at once.
 */
export function checkWait(view: HealingStateView, condition: WaitCondition, since: number): WaitVerdict {
  const now = `phase ${view.phase.replace(/_/g, ' ')}, ${view.armed ? 'armed' : 'not armed'}, last canary ${view.lastCanary ? `${view.lastCanary.outcome} (${new Date(view.lastCanary.at).toISOString()})` : 'none'}`;
  switch (condition) {
    case 'armed':
      return view.armed ? { done: true, text: 'armed' } : { done: false, failed: null, now };
    case 'idle':
      return IDLE_PHASES.includes(view.phase)
        ? { done: true, text: `idle (${view.phase.replace(/_/g, ' ')})` }
        : { done: false, failed: null, now };
    case 'promoted':
    case 'restored': {
      const last = view.lastCanary;
      if (last === null || last.at < since) return { done: false, failed: null, now };
      if (last.outcome === condition)
        return { done: true, text: `${condition}: ${last.candidateId} (${last.reason})` };
      return {
        done: false,
        failed: `the canary ${last.candidateId} ended ${last.outcome}, not ${condition}: ${last.reason}`,
        now,
      };
    }
  }
}
