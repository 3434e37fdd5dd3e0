// What people see of a HealingWorkflow, rendered from its state: the `state` query's view and the Web UI's
// current details (Markdown). Pure: the workflow passes the time and what only it knows (ids, phase).
import { formatDuration } from '../domain/duration-text.js';
import {
  type EscalationRules,
  type EscalationState,
  actionOf,
  adviceOf,
  flagExpiresAt,
  modeOf,
} from '../domain/healing-escalation.js';
import type { HealingPhase } from '../domain/healing-state.js';
import { describeNextWindow, formatLocalTime, upcomingWindow } from '../domain/maintenance-window.js';
import { markdownText as md } from '../domain/markdown-text.js';
import { gibText, signedPercent } from '../domain/memory-text.js';
import { copyHealingCounters } from '../domain/workflow-counters.js';
import type { HealingStateView } from './healing-messages.js';

export interface HealingViewContext {
  workflowId: string;
  firstRunId: string;
  host: string;
  /** The service's name (see HealingStateView.service). */
  service: string | null;
  kind: string;
  now: number;
  phase: HealingPhase;
  /** One sentence: what it will do next, and why. */
  next: string;
  /** Undefined until the run has loaded the host policy. */
  rules: EscalationRules | undefined;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function healingStateView(state: EscalationState, ctx: HealingViewContext): HealingStateView {
  const { now, rules } = ctx;
  const expiresAt = rules ? flagExpiresAt(state, rules) : null;
  const upcoming = rules ? upcomingWindow(rules.window, now) : null;
  const forced = state.forced;
  return {
    workflowId: ctx.workflowId,
    host: ctx.host,
    service: ctx.service,
    kind: ctx.kind,
    now: iso(now),
    phase: ctx.phase,
    next: ctx.next,
    count24h: state.symptoms.count(now),
    threshold: rules?.policy.threshold24h ?? 0,
    kindAction: rules ? actionOf(rules) : 'heal',
    advice: rules ? adviceOf(state, rules) : null,
    armed: state.armedAt !== null,
    armedAt: state.armedAt === null ? null : iso(state.armedAt),
    flagExpiresAt: expiresAt === null ? null : iso(expiresAt),
    forced: forced ? { by: forced.by, reason: forced.reason, at: iso(forced.at) } : null,
    mode: rules ? modeOf(state, rules) : 'predictive',
    nextWindow: {
      opensAt: upcoming ? iso(upcoming.opensAt) : '',
      closesAt: upcoming ? iso(upcoming.closesAt) : '',
      openNow: upcoming !== null && upcoming.opensAt <= now,
      text: rules ? describeNextWindow(rules.window, now) : 'unknown until the policy is loaded',
    },
    hostFigures: state.hostFigures,
    attempts: state.attempts,
    maxAttempts: rules?.policy.maxAttempts ?? 0,
    lastCanary: state.lastCanary,
    recommendation: state.recommendation,
    totals: { ...state.totals },
    counters: copyHealingCounters(state.counters),
    firstRunId: ctx.firstRunId,
    decisions: [...state.decisions],
    policy: rules?.policy ?? null,
    runs: state.runs,
  };
}

/**
 * Markdown for the Web UI's detail page: what it is doing, the figures behind it, what comes next.
 * Everything that comes from outside (operator reasons, log lines, activity messages) is escaped.
 */
export function healingDetails(state: EscalationState, ctx: HealingViewContext): string {
  const { now, rules } = ctx;
  const armed = state.armedAt !== null;
  const mode = rules ? modeOf(state, rules) : 'predictive';
  const action = rules ? actionOf(rules) : 'heal';
  const advice = rules ? adviceOf(state, rules) : null;
  const expiresAt = rules ? flagExpiresAt(state, rules) : null;
  const tz = rules?.policy.maintenanceTimeZone ?? 'UTC';
  const lastDecision = state.decisions[state.decisions.length - 1];
  const flag =
    (!armed
      ? 'not armed'
      : expiresAt === null
        ? 'armed, never lapses'
        : `armed, lapses ${formatLocalTime(expiresAt, tz)} ${tz} unless another symptom comes`) +
    (armed && state.forced ? `; forced by ${md(state.forced.by, 100)}: ${md(state.forced.reason)}` : '');
  // Figures as the coordinator reported them, with the time they were true: the details are written when
  // the workflow runs, and may be read hours later.
  const figures = state.hostFigures;
  const budget = figures
    ? `${formatDuration(figures.budgetLeftMs)} left of ${formatDuration(figures.budgetTotalMs)} as of ${formatLocalTime(figures.asOf, tz)} ${tz}` +
      (figures.cooldownUntil !== null && figures.cooldownUntil > now
        ? `, cooldown until ${formatLocalTime(figures.cooldownUntil, tz)} ${tz}`
        : '')
    : 'not asked yet';
  const best = state.recommendation?.candidates[0];
  return [
    `**${ctx.kind} on ${ctx.host}** — ${ctx.phase.replaceAll('_', ' ')}, mode ${mode}${armed ? ', escalation armed' : ''}`,
    `**Next:** ${md(ctx.next)}`,
    [
      `- Symptoms in 24 h: ${state.symptoms.count(now)} / ${rules?.policy.threshold24h ?? '?'}`,
      `- Kind: ${action}${advice !== null ? ` — ${md(advice)}` : ''}`,
      `- Escalation flag: ${flag}`,
      `- Maintenance window: ${rules ? describeNextWindow(rules.window, now) : 'unknown until the policy is loaded'}`,
      `- Downtime budget: ${budget}`,
      `- Canary attempts: ${state.attempts} / ${rules?.policy.maxAttempts ?? '?'}`,
      state.lastCanary
        ? `- Last canary: ${state.lastCanary.outcome} ${md(state.lastCanary.candidateId)} (${md(state.lastCanary.reason)})`
        : '- Last canary: none',
      best ? `- Recommendation: ${md(best.id)}` : '- Recommendation: none yet',
      calibrationLine(state),
    ].join('\n'),
    lastDecision
      ? `**Last decision:** ${md(lastDecision.action)} — ${md(lastDecision.reason)}${lastDecision.by ? ` (by ${md(lastDecision.by, 100)})` : ''}`
      : '',
  ]
    .filter(Boolean)
    .join('\n\n');
}

/** Measured against predicted: the running config's KV cache, and the last canary's candidate. */
function calibrationLine(state: EscalationState): string {
  const cal = state.recommendation?.calibration;
  const check = state.lastCanary?.prediction;
  const parts = [
    cal && cal.measuredKvMb !== null
      ? `running config KV ${gibText(cal.measuredKvMb)} measured, ${gibText(cal.predictedKvMb)} modelled (${signedPercent(cal.kvErrorRatio ?? 0)})`
      : 'running config not measured yet',
    check
      ? `last canary KV ${gibText(check.predictedKvMb)} predicted, ${gibText(check.measuredKvMb)} measured (${signedPercent(check.errorRatio)})`
      : '',
  ].filter(Boolean);
  return `- Prediction vs vLLM: ${parts.join('; ')}`;
}
