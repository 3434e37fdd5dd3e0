// The state query's answers as text a person on call reads top to bottom: what it will do next and why,
// then the figures behind it. Pure (takes `now`): unit-tested without a server.
import type { Decision } from '../../domain/decision-log.js';
import { formatDuration } from '../../domain/duration-text.js';
import type { HealingStateView } from '../../workflows/healing-messages.js';
import { parseHealingWorkflowId } from '../../domain/identifiers.js';
import { hostFiguresAt } from '../../domain/host-ledger.js';
import { gibText, signedPercent } from '../../domain/memory-text.js';
import { type HostStateView, hostLedgerOf } from '../../workflows/host-coordinator-messages.js';
import { formatTable, mib, relativeTime, seconds, timeWithRelative, utcStamp } from './format.js';

export function armedText(view: Pick<HealingStateView, 'armed' | 'flagExpiresAt'>, now: number): string {
  if (!view.armed) return 'not armed';
  return view.flagExpiresAt === null
    ? 'ARMED (does not lapse)'
    : `ARMED, lapses ${timeWithRelative(view.flagExpiresAt, now)}`;
}

export function decisionRows(decisions: readonly Decision[]): string[][] {
  return decisions.map((d) => [
    utcStamp(d.at),
    `${d.taken ? '' : '✗ '}${d.action}`,
    d.repeats && d.repeats > 1 ? `×${d.repeats}` : '',
    d.by ? `${d.reason} (by ${d.by})` : d.reason,
  ]);
}

export function formatDecisions(decisions: readonly Decision[], maxCell = Infinity): string {
  if (decisions.length === 0) return 'no decisions yet\n';
  return formatTable(['TIME', 'ACTION', 'REPEATS', 'REASON'], decisionRows(decisions), maxCell);
}

export function formatHealingState(view: HealingStateView, now: number, lastDecisions = 5): string {
  const lines: string[] = [];
  const push = (label: string, value: string) => lines.push(`  ${label.padEnd(16)}${value}`);
  // The service is named when the id names it (several services on the host); the legacy id's is not.
  const idService = parseHealingWorkflowId(view.workflowId)?.service ?? null;
  lines.push(
    `${view.kind} on ${view.host}${idService === null ? '' : `, service ${idService}`}  (${view.workflowId})`,
  );
  lines.push(`  next: ${view.next}`);
  push('phase', view.phase.replace(/_/g, ' '));
  push('symptoms 24 h', `${view.count24h} of threshold ${view.threshold}`);
  push('escalation', armedText(view, now));
  if (view.forced) push('forced', `by ${view.forced.by}: ${view.forced.reason}`);
  push('mode', view.mode);
  // The workflow's own sentence names the window in the host's time zone; the UTC time follows.
  const w = view.nextWindow;
  push(
    'window',
    w.openNow ? `${w.text} (closes ${utcStamp(w.closesAt)})` : `${w.text} (opens ${utcStamp(w.opensAt)})`,
  );
  const f = view.hostFigures;
  if (f) {
    push(
      'budget tonight',
      `${formatDuration(f.budgetLeftMs)} left of ${formatDuration(f.budgetTotalMs)} (as the host reported ${relativeTime(f.asOf, now)}; \`healctl status --host\` for now)`,
    );
    push(
      'cooldown',
      f.cooldownUntil !== null && f.cooldownUntil > now
        ? `${formatDuration(f.cooldownUntil - now)} left`
        : 'none',
    );
  } else {
    push('budget tonight', 'not reported yet (no lease asked)');
  }
  push('attempts', `${view.attempts} of ${view.maxAttempts}`);
  const c = view.lastCanary;
  push(
    'last canary',
    c
      ? `${c.outcome} ${relativeTime(c.at, now)}: ${c.candidateId}, downtime ${seconds(c.downtimeMs)}, VRAM ${mib(c.measuredVramMb)} — ${c.reason}`
      : 'none',
  );
  if (c?.prediction) {
    const p = c.prediction;
    push(
      'prediction',
      `last canary's KV cache ${gibText(p.predictedKvMb)} predicted, ${gibText(p.measuredKvMb)} measured by vLLM (${signedPercent(p.errorRatio)})`,
    );
  }
  const cal = view.recommendation?.calibration;
  if (cal) {
    push(
      'calibration',
      cal.measuredKvMb === null
        ? `vLLM${cal.vllmVersion ? ` ${cal.vllmVersion}` : ''} printed no KV cache figure; model ${gibText(cal.predictedKvMb)}`
        : `running config: KV cache ${gibText(cal.measuredKvMb)} measured by vLLM${cal.vllmVersion ? ` ${cal.vllmVersion}` : ''}, ${gibText(cal.predictedKvMb)} modelled (${signedPercent(cal.kvErrorRatio ?? 0)}); candidates are predicted from the measurement`,
    );
  }
  const r = view.recommendation;
  if (r && r.candidates.length > 0) {
    lines.push(`  recommendation (${relativeTime(r.at, now)}, ${r.basis}):`);
    for (const cand of r.candidates.slice(0, 3)) {
      lines.push(
        `    ${cand.fits ? '✓' : '✗'} ${cand.id}: predicted ${mib(cand.predictedVramMb)}, headroom ${mib(cand.headroomMb)}, downtime ~${formatDuration(cand.predictedDowntimeMs)}; gives up ${cand.givesUp}`,
      );
    }
  } else {
    push('recommendation', 'none yet');
  }
  const recent = view.decisions.slice(-lastDecisions);
  if (recent.length > 0) {
    lines.push(`  last ${recent.length} decisions:`);
    for (const row of decisionRows(recent)) {
      lines.push(`    ${row[0]}  ${row[1]}${row[2] ? ` ${row[2]}` : ''} — ${row[3]}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** " of service a" when the lease names the service holding it (coordinators of 0.5 on), else nothing. */
export function leaseService(lease: object): string {
  const service = (lease as { service?: unknown }).service;
  return typeof service === 'string' && service !== '' ? ` of service ${service}` : '';
}

export function formatHostState(view: HostStateView | null, host: string, now: number): string {
  if (view === null) return `host ${host}: no coordinator yet (no canary has asked for a lease)\n`;
  const lines = [`host ${host}  (${view.workflowId})`];
  const push = (label: string, value: string) => lines.push(`  ${label.padEnd(16)}${value}`);
  push('paused', view.paused ? `yes, by ${view.paused.by}: ${view.paused.reason}` : 'no');
  push(
    'restore failure',
    view.restoreFailure
      ? `LATCHED (${view.restoreFailure.kind}, ${relativeTime(view.restoreFailure.at, now)}): ${view.restoreFailure.message} — fix the service, then \`healctl ack ${host} --reason ...\``
      : 'none',
  );
  push(
    'lease',
    view.lease
      ? `held by ${view.lease.kind === 'rollback' ? `an operator rollback (${view.lease.holderWorkflowId})` : `${view.lease.kind} canary`}${leaseService(view.lease)} since ${timeWithRelative(view.lease.grantedAt, now)}, expires ${relativeTime(view.lease.expiresAt, now)} (lease ${view.lease.leaseId})`
      : 'free',
  );
  // At the reader's `now`, from what the coordinator stored: its own figures are as of its last task.
  const figures = view.policy ? hostFiguresAt(hostLedgerOf(view), view.policy, now) : null;
  push(
    'budget',
    figures
      ? `${formatDuration(figures.budgetLeftMs)} left of ${formatDuration(figures.budgetTotalMs)} ${figures.windowOpen ? 'in the open window' : 'for the next window'}`
      : 'unknown until the coordinator has loaded its policy',
  );
  push(
    'cooldown',
    figures && figures.cooldownLeftMs > 0 && view.cooldownUntil
      ? `${formatDuration(figures.cooldownLeftMs)} left (until ${utcStamp(view.cooldownUntil)})`
      : 'none',
  );
  return lines.join('\n') + '\n';
}
