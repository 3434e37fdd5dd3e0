// Application failure types shared by activities (which throw them) and workflows (which react to them).

/** A restore that finally failed: not retried, latches the host. */
export const RESTORE_FAILED = 'RestoreFailed';
/** A measurement that cannot work on this host (no nvidia-smi, no GPU): not retried. */
export const VRAM_UNAVAILABLE = 'VramUnavailable';
