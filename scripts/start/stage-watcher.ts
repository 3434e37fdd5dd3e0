// Follows a HealingWorkflow through its state query and says, once each, when a stage of the healing
// cycle happens: symptoms counted, escalation armed, window open, canary started, promoted (or not).
import type { Client } from '@temporalio/client';
import type { DecisionCode } from '../../src/domain/decision-codes.js';
import { healingWorkflowId } from '../../src/domain/identifiers.js';
import { formatDuration } from '../../src/domain/duration-text.js';
import { gibText, signedPercent } from '../../src/domain/memory-text.js';
import { type HealingStateView, stateQuery } from '../../src/workflows/healing-messages.js';

/** The decisions that say a canary was refused (their words are rendered from the code). */
const CANARY_REFUSED: readonly DecisionCode[] = [
  'canary_refused_no_fit',
  'canary_refused_window_closing',
  'canary_refused_by_host',
];

export interface StageEvent {
  stage: 'symptoms' | 'armed' | 'window' | 'canary' | 'promoted' | 'not-promoted' | 'refused';
  line: string;
}

/** What changed between two views, as stage lines; only what happened at or after `sinceMs`. */
export function stagesBetween(
  before: HealingStateView | null,
  now: HealingStateView,
  sinceMs: number,
): StageEvent[] {
  const events: StageEvent[] = [];
  const newDecisions = now.decisions.filter(
    (d) => d.at >= sinceMs && !before?.decisions.some((b) => b.at === d.at && b.code === d.code),
  );
  if (now.count24h !== (before?.count24h ?? -1) && now.count24h > 0) {
    events.push({
      stage: 'symptoms',
      line: `symptoms counted: ${now.count24h} in 24 h (threshold ${now.threshold})`,
    });
  }
  if (now.armed && !before?.armed) {
    events.push({
      stage: 'armed',
      line: `escalation armed — ${now.nextWindow.openNow ? 'the window is open' : now.nextWindow.text}`,
    });
  }
  if (now.armed && now.nextWindow.openNow && !(before?.armed && before.nextWindow.openNow)) {
    events.push({ stage: 'window', line: `maintenance window open: ${now.nextWindow.text}` });
  }
  for (const d of newDecisions) {
    if (d.code === 'canary_started') events.push({ stage: 'canary', line: `${d.action}: ${d.reason}` });
    else if ((CANARY_REFUSED as readonly string[]).includes(d.code))
      events.push({ stage: 'refused', line: `${d.action}: ${d.reason}` });
  }
  const canary = now.lastCanary;
  if (canary && canary.at >= sinceMs && canary.at !== before?.lastCanary?.at) {
    const changes = Object.entries(canary.changes)
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(', ');
    events.push(
      canary.outcome === 'promoted'
        ? {
            stage: 'promoted',
            line:
              `promoted: the service now runs ${changes}; downtime ${formatDuration(canary.downtimeMs)}` +
              (canary.prediction
                ? `; KV cache ${gibText(canary.prediction.predictedKvMb)} predicted, ${gibText(canary.prediction.measuredKvMb)} measured by vLLM (${signedPercent(canary.prediction.errorRatio)})`
                : ''),
          }
        : { stage: 'not-promoted', line: `canary ${canary.outcome}: ${canary.reason}` },
    );
  }
  return events;
}

/** Polls the state query every `intervalMs` until stopped; missing workflow = nothing yet. */
export function watchStages(opts: {
  client: Client;
  host: string;
  kind: string;
  sinceMs: number;
  onStage: (event: StageEvent) => void;
  intervalMs?: number;
}): { stop(): void } {
  let stopped = false;
  let before: HealingStateView | null = null;
  const handle = opts.client.workflow.getHandle(healingWorkflowId(opts.host, opts.kind));
  const loop = async () => {
    while (!stopped) {
      try {
        const now = await handle.query(stateQuery);
        if (!stopped) for (const e of stagesBetween(before, now, opts.sinceMs)) opts.onStage(e);
        before = now;
      } catch {
        // not started yet, or the server is busy: ask again
      }
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
    }
  };
  void loop();
  return {
    stop() {
      stopped = true;
    },
  };
}
