// Names that end up in workflow ids, task queues and file names. They are validated once, here, so that
// nothing like `../` or a space can ever reach a path or an id built from them.

/**
 * A symptom kind, in its one canonical spelling: lower-case snake case (`vllm_oom`, `gpu_xid`) — words of
 * letters and digits joined by single underscores, starting with a letter. `vllm-oom`, `vllm_oom.` or
 * `VLLM_OOM` would otherwise each get a workflow, a count and an attempt cap of their own.
 */
export const KIND_PATTERN = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/;
const KIND_MAX = 64;
/** A GPU host name: a DNS-style name (letters, digits, `-`, `.`, `_`), at most 128 characters. */
export const HOST_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export const KIND_EXPECTED =
  'a symptom kind of 1-64 characters in lower-case snake case: letters and digits joined by single "_", starting with a letter (e.g. vllm_oom)';
export const HOST_EXPECTED =
  'a host name of 1-128 characters: letters, digits, "-", "." or "_", starting with a letter or digit (e.g. gpu-node-1)';

export function isValidKind(kind: string): boolean {
  return kind.length <= KIND_MAX && KIND_PATTERN.test(kind);
}

/** The canonical spelling a person probably meant (`VLLM-OOM.` → `vllm_oom`), or null when none is near. */
export function canonicalKindHint(kind: string): string | null {
  const guess = kind
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^[_0-9]+|_+$/g, '');
  return guess !== kind && isValidKind(guess) ? guess : null;
}

/** Why `kind` is not a kind, with the canonical spelling when one is near: for every door's error. */
export function kindProblem(kind: string): string {
  const hint = canonicalKindHint(kind);
  return `expected ${KIND_EXPECTED}${hint ? `; did you mean "${hint}"?` : ''}`;
}

export function isValidHost(host: string): boolean {
  return HOST_PATTERN.test(host) && !host.includes('..');
}

/** Documented, deterministic id of the HealingWorkflow of one (host, kind): any service can address it. */
export function healingWorkflowId(host: string, kind: string): string {
  return `kloros-healing/${host}/${kind}`;
}

/** Documented, deterministic id of the coordinator workflow of one GPU host. */
export function hostCoordinatorWorkflowId(host: string): string {
  return `kloros-host/${host}`;
}

/** The task queue served by the worker that runs on that GPU host (workflows and activities alike). */
export function hostTaskQueue(host: string): string {
  return `kloros-healing.${host}`;
}
