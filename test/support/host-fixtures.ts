// The host the coordinator's pure tests share: a 60 s budget in a 03:00-07:00 UTC window, a 6 h
// cooldown, a night when the window is open, and one canary's lease request.
import type { LeaseRequest } from '../../src/domain/host-ledger.js';
import { parseMaintenanceWindow } from '../../src/domain/maintenance-window.js';
import { DEFAULT_POLICY, type HealingPolicy } from '../../src/domain/policy.js';

export const policy: HealingPolicy = {
  ...DEFAULT_POLICY,
  maintenanceTimeZone: 'UTC',
  maxDowntimeSeconds: 60,
  cooldownHours: 6,
};
export const window = parseMaintenanceWindow('03:00-07:00', 'UTC');
/** The window's opening on 2026-11-28. */
export const NIGHT = Date.UTC(2026, 10, 28, 3, 0);
export const HOUR = 3600_000;
export const request: LeaseRequest = {
  requestId: 'r1',
  holderWorkflowId: 'kloros-healing/gpu-1/vllm_oom',
  kind: 'vllm_oom',
  predictedDowntimeMs: 20_000,
};
