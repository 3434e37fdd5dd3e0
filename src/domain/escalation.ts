// When an armed escalation flag lapses, and whether an armed escalation missed a maintenance window.
// Pure: the workflow passes the instants and the window; nothing here reads a clock.
//
// The rule (docs/workflows.md): an armed flag lapses KLR_ESCALATION_FLAG_TTL after the last symptom (or
// force), but never before the first maintenance window that opens after it was armed has closed — the TTL
// stops stale escalations, it must not cancel tonight's canary for OOMs seen at noon.
import {
  type MaintenanceWindow,
  type WindowOccurrence,
  currentWindow,
  nextOpening,
} from './maintenance-window.js';

export interface FlagTimes {
  /** When the flag was armed (epoch ms); null = not armed. */
  armedAt: number | null;
  /** Event time of the newest counted symptom. */
  lastSymptomAt: number | null;
  /** When an operator last forced the escalation. */
  forcedAt: number | null;
  /** KLR_ESCALATION_FLAG_TTL; 0 = never lapses. */
  ttlSeconds: number;
}

/**
 * The window an escalation armed at `armedAt` is owed: the occurrence opening exactly then, else the first
 * to open after it. An escalation armed inside an open window is tried at once, and is still owed the next
 * whole window.
 */
export function owedWindow(window: MaintenanceWindow, armedAt: number): WindowOccurrence {
  const open = currentWindow(window, armedAt);
  return open !== null && open.opensAt === armedAt ? open : nextOpening(window, armedAt);
}

/**
 * When the armed flag lapses (epoch ms), or null when it is not armed or never lapses. `window` is the
 * window the escalation is owed; null for escalations that wait for no window (kinds that only alert).
 */
export function flagExpiresAt(times: FlagTimes, window: MaintenanceWindow | null): number | null {
  if (times.armedAt === null || times.ttlSeconds === 0) return null;
  const anchor = Math.max(times.lastSymptomAt ?? 0, times.forcedAt ?? 0, times.armedAt);
  const ttlEnd = anchor + times.ttlSeconds * 1000;
  return window === null ? ttlEnd : Math.max(ttlEnd, owedWindow(window, times.armedAt).closesAt);
}
