// The state one HealingWorkflow keeps about its (host, kind): what continue-as-new carries to the next run,
// and the records it keeps (the last canary, the host's figures, symptom totals). Serialisable; no
// Temporal imports.
import type { Decision } from './decision-log.js';
import type { WindowOccurrence } from './maintenance-window.js';
import type { CandidateConfig, Recommendation } from './recommendation.js';
import type { SymptomInput } from './symptom.js';
import type { SymptomWindowState } from './symptom-window.js';
import type { HealingCounters } from './workflow-counters.js';

/** An operator's request (force, clear, pause...): who asks and why. */
export interface OperatorAction {
  /** Who asks (a person or a system). */
  by: string;
  /** Why, in their words. */
  reason: string;
}

export interface CanaryRecord {
  /** When it ended: promoted, or restored (or the restore failed). */
  at: number;
  /** When it started (absent in records of 0.1). */
  startedAt?: number;
  candidateId: string;
  changes: CandidateConfig['changes'];
  outcome: 'promoted' | 'restored' | 'restore_failed' | 'cancelled';
  reason: string;
  downtimeMs: number;
  measuredVramMb: number | null;
  /** The candidate's predicted KV cache against what vLLM printed when it started (absent: not measured). */
  prediction?: PredictionCheck;
}

/** How far the memory model was off for a canary's candidate (docs/prediction.md, "Calibration"). */
export interface PredictionCheck {
  predictedKvMb: number;
  measuredKvMb: number;
  /** (predicted − measured) / measured. */
  errorRatio: number;
}

/** The check for a candidate and what its start printed, or null when either figure is missing. */
export function predictionCheck(
  candidate: Pick<CandidateConfig, 'predictedKvMb'>,
  measured: { kvCacheMb: number | null } | undefined,
): PredictionCheck | null {
  const predicted = candidate.predictedKvMb;
  const actual = measured?.kvCacheMb;
  if (predicted === undefined || actual === undefined || actual === null || actual === 0) return null;
  return {
    predictedKvMb: predicted,
    measuredKvMb: actual,
    errorRatio: (predicted - actual) / Math.abs(actual),
  };
}

export interface CarriedHealingState {
  window: SymptomWindowState;
  lastSymptomAt: number | null;
  forced: (OperatorAction & { at: number }) | null;
  armedAt: number | null;
  attempts: number;
  lastCanary: CanaryRecord | null;
  recommendation: Recommendation | null;
  lastPredictedAt: number | null;
  lastSymptomDetails: SymptomInput['details'] | null;
  hostFigures: HostFigures | null;
  decisions: Decision[];
  totals: SymptomTotals;
  /** Canary outcomes, downtimes and refusals for the metrics; absent in runs carried from older versions. */
  counters?: HealingCounters;
  /** The window an armed escalation is being offered; absent in runs carried from 0.1. */
  offered?: OfferedWindow | null;
  runs: number;
}

/** A maintenance window offered to an armed escalation: missed when it closes with no canary run in it. */
export interface OfferedWindow extends WindowOccurrence {
  canaryRan: boolean;
}

export interface HostFigures {
  budgetLeftMs: number;
  budgetTotalMs: number;
  cooldownUntil: number | null;
  /** When the coordinator reported these figures (epoch ms). */
  asOf: number;
}

export interface SymptomTotals {
  counted: number;
  duplicates: number;
  stale: number;
  rejected: number;
}

export type HealingPhase =
  | 'starting'
  | 'watching'
  | 'waiting_for_window'
  | 'requesting_lease'
  | 'canary_running'
  | 'restoring'
  | 'blocked';
