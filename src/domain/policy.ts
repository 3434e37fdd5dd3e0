// The settings the workflows act on. The worker reads them from its environment (validated at start)
// and hands them to each workflow run through a local activity, so that the GPU host's own settings
// are the single source of truth and a change takes effect at the next run or window.

import type { KindAction } from './kind-policy.js';

export type CanaryMode = 'predictive' | 'canary';

export interface HealingPolicy {
  /** Symptoms in 24 h before the escalation flag is armed. */
  threshold24h: number;
  /** Seconds after the last symptom until an armed flag lapses (0 = never). */
  escalationFlagTtlSeconds: number;
  /** Daily maintenance window, local time, "HH:MM-HH:MM". */
  maintenanceWindow: string;
  /** IANA zone of the window. */
  maintenanceTimeZone: string;
  /** Downtime budget per window per GPU host, seconds. */
  maxDowntimeSeconds: number;
  /** Mode when not escalated. */
  defaultMode: CanaryMode;
  /** Hours between canaries on one host. */
  cooldownHours: number;
  /** Canary attempts per escalation before the loop stops trying and waits for an operator. */
  maxAttempts: number;
  /** Seconds a promoted candidate is watched for new OOMs before it passes. */
  soakSeconds: number;
  /** Seconds a canary lease is held at most before the coordinator takes it back. */
  leaseTtlSeconds: number;
  /** Least seconds between two predictive runs of one workflow. */
  predictIntervalSeconds: number;
  /** History length at which a run continues as new even if the server has not suggested it yet. */
  historyEventsLimit: number;
  /**
   * What each kind may do beyond the built-in kinds (KLR_KIND_ACTIONS, see kind-policy.ts). Absent in
   * policies recorded by 0.1.0 histories: read it with {@link kindActionsOf}.
   */
  kindActions?: Record<string, KindAction>;
  /**
   * Canaries one host may run in any 7 days, all kinds together (KLR_HOST_MAX_CANARIES_7D): attempts and
   * budget stop a config from ratcheting down one step per kind. Absent in 0.1.0 histories: read it with
   * {@link hostMaxCanariesOf}.
   */
  hostMaxCanaries7d?: number;
}

/** Default of {@link HealingPolicy.hostMaxCanaries7d}: a week's worth of one escalation's attempts. */
export const DEFAULT_HOST_MAX_CANARIES_7D = 3;

export function kindActionsOf(policy: HealingPolicy): Record<string, KindAction> {
  return policy.kindActions ?? {};
}

export function hostMaxCanariesOf(policy: HealingPolicy): number {
  return policy.hostMaxCanaries7d ?? DEFAULT_HOST_MAX_CANARIES_7D;
}

export const DEFAULT_POLICY: HealingPolicy = {
  threshold24h: 3,
  escalationFlagTtlSeconds: 14_400,
  maintenanceWindow: '03:00-07:00',
  maintenanceTimeZone: 'UTC',
  maxDowntimeSeconds: 60,
  defaultMode: 'predictive',
  cooldownHours: 6,
  maxAttempts: 3,
  soakSeconds: 30,
  leaseTtlSeconds: 1800,
  predictIntervalSeconds: 300,
  historyEventsLimit: 10_000,
  kindActions: {},
  hostMaxCanaries7d: DEFAULT_HOST_MAX_CANARIES_7D,
};
