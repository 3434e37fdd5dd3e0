// Messages of HealingWorkflow(host, kind). Any service can send them: with the SDK (these definitions),
// or with the plain Temporal CLI by name, e.g.
//   temporal workflow signal --workflow-id kloros-healing/gpu-1/vllm_oom --name symptom \
//     --input '{"kind":"vllm_oom","details":{"deficitMb":512}}'
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Recommendation } from '../domain/recommendation.js';
import type { Decision } from '../domain/decision-log.js';
import type { LeaseDecision } from '../domain/host-ledger.js';
import type { KindAction } from '../domain/kind-policy.js';
import type { CanaryMode, HealingPolicy } from '../domain/policy.js';
import type { SymptomInput } from '../domain/symptom.js';
import type { HealingCounters } from '../domain/workflow-counters.js';
import type {
  CarriedHealingState,
  CanaryRecord,
  HealingPhase,
  HostFigures,
  OperatorAction,
  SymptomTotals,
} from '../domain/healing-state.js';

export type {
  CanaryRecord,
  CarriedHealingState,
  HealingPhase,
  HostFigures,
  OfferedWindow,
  OperatorAction,
  PredictionCheck,
  SymptomTotals,
} from '../domain/healing-state.js';
export { predictionCheck } from '../domain/healing-state.js';
export type { LeaseDecision } from '../domain/host-ledger.js';

export interface HealingWorkflowInput {
  host: string;
  kind: string;
  /** The service, as in the workflow id kloros-healing/<host>/<service>/<kind>; absent for a legacy id. */
  service?: string;
  /** State carried over from the previous run (continue-as-new). */
  carried?: CarriedHealingState;
}

export interface RecordSymptomResult {
  outcome: 'counted' | 'duplicate' | 'stale';
  count24h: number;
  threshold: number;
  armed: boolean;
  /** ISO time the armed flag lapses; null when not armed or it never lapses. */
  flagExpiresAt: string | null;
  mode: CanaryMode;
}

export interface HealingStateView {
  workflowId: string;
  host: string;
  /**
   * The service it heals: from the workflow id, or for a legacy id (kloros-healing/<host>/<kind>) the name
   * the host's worker gives its legacy service; null until a worker has named it (or in older runs).
   */
  service: string | null;
  kind: string;
  now: string;
  phase: HealingPhase;
  /** One sentence: what it will do next, and why. */
  next: string;
  count24h: number;
  threshold: number;
  /** What this kind may make the loop do: heal (config canary), alert (arm and explain), count. */
  kindAction: KindAction;
  /** For kinds that are not healed: what an operator should do instead (hardware faults), else null. */
  advice: string | null;
  armed: boolean;
  armedAt: string | null;
  flagExpiresAt: string | null;
  forced: { by: string; reason: string; at: string } | null;
  mode: CanaryMode;
  nextWindow: { opensAt: string; closesAt: string; openNow: boolean; text: string };
  hostFigures: HostFigures | null;
  attempts: number;
  maxAttempts: number;
  lastCanary: CanaryRecord | null;
  recommendation: Recommendation | null;
  totals: SymptomTotals;
  /** Monotonic totals the worker exports as Prometheus counters (docs/metrics.md). */
  counters: HealingCounters;
  /** Run id of the first run of this chain: a new one means the counts started again from zero. */
  firstRunId: string;
  decisions: Decision[];
  policy: HealingPolicy | null;
  runs: number;
}

/** Report a symptom; never fails the workflow — a bad payload is recorded as a rejected decision. */
export const symptomSignal = defineSignal<[SymptomInput]>('symptom');
/** Report a symptom and get the count back; the validator rejects a bad payload, naming the field. */
export const recordSymptomUpdate = defineUpdate<RecordSymptomResult, [SymptomInput]>('recordSymptom');
/** Everything a person needs to know what it will do next and why. */
export const stateQuery = defineQuery<HealingStateView>('state');
/** Operator: disarm the escalation and forget the counted symptoms. */
export const clearEscalationUpdate = defineUpdate<HealingStateView, [OperatorAction]>('clearEscalation');
/** Operator: arm the escalation now, whatever the count. */
export const forceEscalationUpdate = defineUpdate<HealingStateView, [OperatorAction]>('forceEscalation');
/** From the host coordinator: the answer to a lease request. */
export const leaseDecisionSignal = defineSignal<[LeaseDecision]>('leaseDecision');
