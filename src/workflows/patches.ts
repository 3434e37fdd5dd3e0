// The patch ids of past releases (docs/upgrading.md): each stays while a history written before it may
// still replay. Both workflows check the same id for the same release.

/**
 * Release 0.2 ("safe to act alone"): the kind policy, the escalation owed its window, missed windows, idle
 * count-only workflows ending, and the coordinator's checks. Histories written before it replay the 0.1
 * behaviour.
 */
export const SAFE_RULES_PATCH = 'safe-to-act-alone';
