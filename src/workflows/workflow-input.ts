// The start input of each workflow, checked. The workflow id is the authority on which (host, service, kind)
// a run serves: symptoms are addressed by it (kloros-healing/<host>/<service>/<kind>, or the legacy
// kloros-healing/<host>/<kind> of a host's legacy service), so an input that disagrees with
// it, or is not an object at all, is set aside with a note rather than trusted or thrown (a throw here
// would fail every workflow task of the run). State carried across continue-as-new that does not have the
// expected shape is dropped the same way: the run starts fresh and says so.
import { isValidHost, parseHealingWorkflowId } from '../domain/identifiers.js';
import type { CarriedHealingState } from './healing-messages.js';
import type { CarriedHostState } from './host-coordinator-messages.js';
import { carriedHealingStateSchema, carriedHostStateSchema, check } from './message-schemas.js';

export type InputReading<T> = { ok: true; value: T; notes: string[] } | { ok: false; error: string };

const field = (raw: unknown, key: string): unknown =>
  typeof raw === 'object' && raw !== null && !Array.isArray(raw)
    ? (raw as Record<string, unknown>)[key]
    : undefined;

function carried<T>(raw: unknown, schema: Parameters<typeof check>[0], notes: string[]): T | null {
  const state = field(raw, 'carried');
  if (state === undefined || state === null) return null;
  const checked = check(schema, state);
  if (checked.ok) return checked.value as T; // the schema checks every field this code reads
  notes.push(`the state carried from the previous run was refused (${checked.error}); starting fresh`);
  return null;
}

export function readHealingInput(
  raw: unknown,
  workflowId: string,
): InputReading<{ host: string; service: string | null; kind: string; carried: CarriedHealingState | null }> {
  const id = parseHealingWorkflowId(workflowId);
  if (id === null) {
    return {
      ok: false,
      error: `workflow id ${JSON.stringify(workflowId.slice(0, 300))} is not kloros-healing/<host>/<kind> or kloros-healing/<host>/<service>/<kind> with a valid host, service and kind; nothing to heal`,
    };
  }
  const { host, service, kind } = id;
  const notes: string[] = [];
  const rawService = field(raw, 'service');
  if (field(raw, 'host') !== host || field(raw, 'kind') !== kind || (rawService ?? null) !== service) {
    const expected = service === null ? { host, kind } : { host, service, kind };
    notes.push(
      `start input ignored (expected ${JSON.stringify(expected).replace(/":/g, '": ').replace(/,"/g, ', "')}); ${service === null ? 'host and kind' : 'host, service and kind'} taken from the workflow id`,
    );
  }
  return {
    ok: true,
    value: {
      host,
      service,
      kind,
      carried: carried<CarriedHealingState>(raw, carriedHealingStateSchema, notes),
    },
    notes,
  };
}

export function readHostInput(
  raw: unknown,
  workflowId: string,
): InputReading<{ host: string; carried: CarriedHostState | null }> {
  const m = /^kloros-host\/([^/]+)$/.exec(workflowId);
  const host = m?.[1];
  if (host === undefined || !isValidHost(host)) {
    return {
      ok: false,
      error: `workflow id ${JSON.stringify(workflowId.slice(0, 300))} is not kloros-host/<host> with a valid host; no host to coordinate`,
    };
  }
  const notes: string[] = [];
  if (field(raw, 'host') !== host) {
    notes.push(`start input ignored (expected {"host": "${host}"}); host taken from the workflow id`);
  }
  return {
    ok: true,
    value: { host, carried: carried<CarriedHostState>(raw, carriedHostStateSchema, notes) },
    notes,
  };
}
