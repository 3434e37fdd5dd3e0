// What a symptom kind may make the loop do. Only GPU-memory failures can be healed by a smaller vLLM
// config; a hardware fault is never retuned (a smaller config hides a failing GPU and costs capacity for
// nothing); a kind nobody described is counted and shown, and acts only when the operator says so.
//
//   heal   counted; at the threshold the escalation arms and a config canary may run in the window
//   alert  counted; at the threshold the escalation arms (alerts fire) but no canary ever runs: the
//          decision log and `healctl status` say what a person should do instead
//   count  counted and visible; never arms, never acts
//
// Built in: vllm_oom → heal, gpu_xid → alert, anything else → count. KLR_KIND_ACTIONS overrides per
// kind ("my_mem_alert=heal,ecc_page_retired=alert"); a hardware kind can never be set to heal.

export type KindAction = 'heal' | 'alert' | 'count';

export const KIND_ACTIONS: readonly KindAction[] = ['heal', 'alert', 'count'];

/** Kinds whose meaning is built in. */
export const BUILT_IN_KIND_ACTIONS: Readonly<Record<string, KindAction>> = {
  vllm_oom: 'heal',
  gpu_xid: 'alert',
};

/** Hardware faults: an operator may demote them to count, never promote them to heal. */
export const HARDWARE_KINDS: ReadonlySet<string> = new Set(['gpu_xid']);

/** What the loop does for `kind`, given the operator's overrides (KLR_KIND_ACTIONS). */
export function kindAction(
  kind: string,
  overrides: Readonly<Record<string, KindAction>> | undefined,
): KindAction {
  const chosen = overrides?.[kind] ?? BUILT_IN_KIND_ACTIONS[kind] ?? 'count';
  return chosen === 'heal' && HARDWARE_KINDS.has(kind) ? 'alert' : chosen;
}

export type KindActionsParse =
  { ok: true; actions: Record<string, KindAction> } | { ok: false; error: string };

/**
 * Parse KLR_KIND_ACTIONS: comma-separated `kind=action` pairs; empty = no overrides. Kinds must already
 * be canonical (the caller passes the kind check), each kind at most once.
 */
export function parseKindActions(text: string, isKind: (kind: string) => boolean): KindActionsParse {
  const actions: Record<string, KindAction> = {};
  const trimmed = text.trim();
  if (trimmed === '') return { ok: true, actions };
  for (const part of trimmed.split(',')) {
    const m = /^\s*([^=\s]+)\s*=\s*([a-z]+)\s*$/.exec(part);
    if (!m) return { ok: false, error: `"${part.trim()}" is not kind=action` };
    const [, kind, action] = m as unknown as [string, string, string];
    if (!isKind(kind)) return { ok: false, error: `"${kind}" is not a canonical kind` };
    if (!(KIND_ACTIONS as readonly string[]).includes(action)) {
      return { ok: false, error: `"${action}" for ${kind} is not one of ${KIND_ACTIONS.join(', ')}` };
    }
    if (action === 'heal' && HARDWARE_KINDS.has(kind)) {
      return { ok: false, error: `${kind} is a hardware fault: it can be alert or count, never heal` };
    }
    if (kind in actions) return { ok: false, error: `${kind} is given twice` };
    actions[kind] = action as KindAction;
  }
  return { ok: true, actions };
}
