// Incident → the symptom the HealingWorkflow receives, with an idempotency id derived from where the
// incident was read: the same lines re-read after a restart give the same ids, so nothing counts twice.
import { createHash } from 'node:crypto';
import { type SymptomInput, cleanText } from '../domain/symptom.js';
import type { Incident } from './types.js';

const MAX_TEXT = 2000;
const MAX_ID = 200;

/** A short, stable key for a source identity (path + device + inode, or a command line). */
export function sourceKeyOf(identity: string): string {
  return createHash('sha256').update(identity).digest('hex').slice(0, 16);
}

/**
 * The source key of a log followed for a named service (the workflow-id service): the service is mixed
 * in, so two services' logs never give one id, even for the same lines at the same offsets. The legacy
 * service keeps the plain key, and with it the ids of its single-service release.
 */
export function serviceSourceKey(service: string | null, sourceKey: string): string {
  return service === null ? sourceKey : sourceKeyOf(`service:${service}\u0000${sourceKey}`);
}

/** `obs/<host>/<sourceKey>/<position>`: stable across restarts, distinct across rotated files. */
export function symptomId(host: string, sourceKey: string, position: number | string): string {
  return `obs/${host}/${sourceKey}/${position}`.slice(0, MAX_ID);
}

export function incidentToSymptom(
  incident: Incident,
  host: string,
  sourceKey: string,
): SymptomInput & { id: string } {
  const s = incident.sizesMib;
  const details: NonNullable<SymptomInput['details']> = { family: incident.family };
  if (s.alloc !== undefined) details.allocMb = s.alloc;
  if (s.free !== undefined) details.freeMb = s.free;
  if (s.total !== undefined) details.totalMb = s.total;
  if (s.deficit !== undefined) details.deficitMb = s.deficit;
  if (incident.estimatedMaxModelLen !== undefined)
    details.estimatedMaxModelLen = incident.estimatedMaxModelLen;
  if (incident.gpu !== undefined) details.gpu = incident.gpu;
  const text = cleanText(incident.text, MAX_TEXT);
  if (text !== '') details.text = text;
  return {
    kind: incident.kind,
    ...(incident.at !== null ? { eventTime: incident.at } : {}),
    id: symptomId(host, sourceKey, incident.position),
    source: 'observer',
    details,
  };
}
