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

/**
 * A service's name on its host (docs/deployment.md): an RFC 1123 label — lower-case letters, digits and
 * "-", 1-63 characters, starting and ending with a letter or digit — like a Kubernetes or systemd name.
 */
export const SERVICE_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const SERVICE_EXPECTED =
  'a service name of 1-63 characters: lower-case letters, digits and "-", starting and ending with a letter or digit (e.g. llama-70b)';

export function isValidService(service: unknown): service is string {
  return typeof service === 'string' && SERVICE_PATTERN.test(service);
}

export function isValidHost(host: string): boolean {
  return HOST_PATTERN.test(host) && !host.includes('..');
}

/**
 * Documented, deterministic id of the HealingWorkflow of one (host, service, kind): any service can address
 * it. `service` null: the host's legacy service, whose ids do not name it (kloros-healing/<host>/<kind>, as
 * every single-service release wrote them: docs/upgrading.md).
 */
export function healingWorkflowId(host: string, kind: string, service: string | null = null): string {
  return service === null ? `kloros-healing/${host}/${kind}` : `kloros-healing/${host}/${service}/${kind}`;
}

/** The (host, service, kind) a healing workflow id names; service null for a legacy id; null if not one. */
export function parseHealingWorkflowId(
  workflowId: string,
): { host: string; service: string | null; kind: string } | null {
  const m = /^kloros-healing\/([^/]+)\/(?:([^/]+)\/)?([^/]+)$/.exec(workflowId);
  if (!m) return null;
  const [, host, service, kind] = m;
  if (!isValidHost(host!) || !isValidKind(kind!) || (service !== undefined && !isValidService(service)))
    return null;
  return { host: host!, service: service ?? null, kind: kind! };
}

/** Documented, deterministic id of the coordinator workflow of one GPU host. */
export function hostCoordinatorWorkflowId(host: string): string {
  return `kloros-host/${host}`;
}

/** The task queue served by the worker that runs on that GPU host (workflows and activities alike). */
export function hostTaskQueue(host: string): string {
  return `kloros-healing.${host}`;
}
