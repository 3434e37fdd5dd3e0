// The patch ids of past releases (docs/upgrading.md): each stays while a history written before it may
// still replay. Both workflows check the same id for the same release.

/**
 * Release 0.2 ("safe to act alone"): the kind policy, the escalation owed its window, missed windows, idle
 * count-only workflows ending, and the coordinator's checks. Histories written before it replay the 0.1
 * behaviour.
 */
export const SAFE_RULES_PATCH = 'safe-to-act-alone';

/**
 * Release 0.3: the lease is one update (`lease`, update-with-start from the acquireCanaryLease activity)
 * whose result is the decision, and a holder that asks again gives up the unused lease it holds. Histories written
 * before it replay the 0.2 signal exchange (requestLease → leaseDecision), which stays until no host runs
 * a workflow started by 0.2 (docs/upgrading.md).
 */
export const LEASE_UPDATE_PATCH = 'lease-update';

/**
 * Release 0.4: the healing workflow asks its worker whether KlrPhase is registered and, where it is, sets it
 * with the other search attributes on every phase change. Histories written before it replay without.
 */
export const PHASE_ATTRIBUTE_PATCH = 'phase-search-attribute';

/**
 * Release 0.5 (several services per host): the healing workflow asks its worker for its legacy service's
 * name and whether KlrService is registered (serviceIdentity), and sets KlrService where it is. Histories
 * written before it replay without; their runs act on the host's legacy service as before.
 */
export const SERVICE_IDENTITY_PATCH = 'service-identity';
