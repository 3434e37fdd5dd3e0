// Names that end up in workflow ids, task queues and file names. They are validated once, here, so that
// nothing like `../` or a space can ever reach a path or an id built from them.

/** A symptom kind: lower-case letters, digits, `_`, `.` or `-`, starting with a letter or digit. */
export const KIND_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
/** A GPU host name: a DNS-style name (letters, digits, `-`, `.`, `_`), at most 128 characters. */
export const HOST_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export const KIND_EXPECTED =
  'a symptom kind of 1-64 characters: lower-case letters, digits, "_", "." or "-", starting with a letter or digit (e.g. vllm_oom)';
export const HOST_EXPECTED =
  'a host name of 1-128 characters: letters, digits, "-", "." or "_", starting with a letter or digit (e.g. gpu-node-1)';

export function isValidKind(kind: string): boolean {
  return KIND_PATTERN.test(kind) && !kind.includes('..');
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
