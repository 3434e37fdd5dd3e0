// What people see of a HostCoordinatorWorkflow, rendered from its state: the `hostState` query's view and
// the Web UI's current details (Markdown). Pure: the workflow passes the time and what only it knows.
import type { Decision } from '../domain/decision-log.js';
import { formatDuration } from '../domain/duration-text.js';
import { type HostLedgerState, budgetLeftMs, budgetTotalMs, ledgerFor } from '../domain/host-ledger.js';
import { markdownText as md } from '../domain/markdown-text.js';
import { type MaintenanceWindow, currentWindow, formatLocalTime } from '../domain/maintenance-window.js';
import type { HealingPolicy } from '../domain/policy.js';
import { type HostCounters, copyHostCounters } from '../domain/workflow-counters.js';
import type { HostStateView } from './host-coordinator-messages.js';

export interface HostViewContext {
  workflowId: string;
  firstRunId: string;
  host: string;
  now: number;
  /** Undefined until the run has loaded the host policy. */
  policy: HealingPolicy | undefined;
  window: MaintenanceWindow | undefined;
  decisions: Decision[];
  counters: HostCounters;
  runs: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function hostStateView(state: HostLedgerState, ctx: HostViewContext): HostStateView {
  const { now, policy, window } = ctx;
  const occurrence = window ? currentWindow(window, now) : null;
  const current = ledgerFor(state.ledger, occurrence);
  return {
    workflowId: ctx.workflowId,
    host: ctx.host,
    now: iso(now),
    budgetTotalMs: policy ? budgetTotalMs(policy) : 0,
    budgetLeftMs: policy && window ? budgetLeftMs(state, policy, window, now) : 0,
    budgetSpentMs: occurrence ? current.spentMs : 0,
    overrunMs: occurrence ? current.overrunMs : 0,
    windowOpensAt: current.windowOpensAt === null ? null : iso(current.windowOpensAt),
    cooldownUntil: state.cooldownUntil === null ? null : iso(state.cooldownUntil),
    cooldownLeftMs: state.cooldownUntil === null ? 0 : Math.max(0, state.cooldownUntil - now),
    lease: state.lease,
    paused: state.paused ? { ...state.paused, at: iso(state.paused.at) } : null,
    restoreFailure: state.restoreFailure
      ? { ...state.restoreFailure, at: iso(state.restoreFailure.at) }
      : null,
    ledger: { ...state.ledger },
    counters: copyHostCounters(ctx.counters),
    firstRunId: ctx.firstRunId,
    decisions: [...ctx.decisions],
    policy: policy ?? null,
    runs: ctx.runs,
  };
}

/** The Web UI's current details: budget, cooldown, lease, pause, latch, last decision. */
export function hostDetails(state: HostLedgerState, ctx: HostViewContext): string {
  const v = hostStateView(state, ctx);
  const last = ctx.decisions[ctx.decisions.length - 1];
  const tz = ctx.policy?.maintenanceTimeZone ?? 'UTC';
  const now = ctx.now;
  const doing = v.restoreFailure
    ? 'canaries stopped: a restore failed (healctl ack)'
    : v.paused
      ? 'paused'
      : v.lease
        ? `${v.lease.kind === 'rollback' ? 'operator rollback' : 'canary'} running (${md(v.lease.kind)}${v.lease.service ? `, service ${md(v.lease.service)}` : ''})`
        : 'idle';
  // Written when the workflow runs and read at any time later: times, not "N minutes left".
  return [
    `**GPU host ${ctx.host}** — ${doing}`,
    [
      `- Downtime budget: ${formatDuration(v.budgetLeftMs)} left of ${formatDuration(v.budgetTotalMs)} as of ${formatLocalTime(now, tz)} ${tz}` +
        (v.overrunMs > 0 ? `, overrun ${formatDuration(v.overrunMs)}` : ''),
      `- Cooldown: ${state.cooldownUntil !== null && state.cooldownUntil > now ? `until ${formatLocalTime(state.cooldownUntil, tz)} ${tz} (${v.cooldownUntil})` : 'over'}`,
      `- Paused: ${v.paused ? `by ${md(v.paused.by, 100)}: ${md(v.paused.reason)}` : 'no'}`,
      `- Restore failure: ${v.restoreFailure ? `${md(v.restoreFailure.kind)}${v.restoreFailure.service ? ` (service ${md(v.restoreFailure.service)})` : ''} at ${v.restoreFailure.at}: ${md(v.restoreFailure.message)}` : 'none'}`,
    ].join('\n'),
    last
      ? `**Last decision:** ${md(last.action)} — ${md(last.reason)}${last.by ? ` (by ${md(last.by, 100)})` : ''}`
      : '',
  ]
    .filter(Boolean)
    .join('\n\n');
}
