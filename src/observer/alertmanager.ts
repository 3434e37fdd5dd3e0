// Alertmanager's webhook payload (version 4) and how its firing alerts become symptoms. Resolved alerts
// are ignored: a symptom is an event, and the event is the alert starting to fire. The id is the
// alert's fingerprint plus the instant it started (normalised, see normalizeStartsAt), so the webhook's
// repeats of one firing alert count once, while the same alert firing again later counts again.
import { z } from 'zod';
import { HOST_EXPECTED, KIND_EXPECTED, isValidHost, isValidKind } from '../domain/identifiers.js';
import { type SymptomInput, cleanLine, cleanText, parseSymptom } from '../domain/symptom.js';

export const DEFAULT_KIND_LABEL = 'kloros_kind';
/** The label that names the service an alert is about, on a host with several (KLR_HTTP_DOOR_SERVICE_LABEL). */
export const DEFAULT_SERVICE_LABEL = 'service';

const labelSet = z.record(z.string(), z.string());

// Objects are not strict: Alertmanager may add fields in later releases; only what we use is checked.
export const alertSchema = z.object({
  status: z.enum(['firing', 'resolved'], { error: 'expected "firing" or "resolved"' }),
  labels: labelSet,
  annotations: labelSet.optional(),
  startsAt: z.iso.datetime({ offset: true, error: 'expected an RFC 3339 time with zone' }),
  endsAt: z.string().optional(),
  generatorURL: z.string().optional(),
  fingerprint: z
    .string({ error: 'expected the alert fingerprint' })
    .regex(/^[0-9A-Za-z]{1,64}$/, 'expected the alert fingerprint (1-64 letters or digits)'),
});

export const webhookSchema = z.object({
  version: z.literal('4', { error: 'expected "4" (Alertmanager webhook payload version 4)' }),
  status: z.enum(['firing', 'resolved'], { error: 'expected "firing" or "resolved"' }),
  receiver: z.string().optional(),
  groupKey: z.string().optional(),
  alerts: z
    .array(alertSchema, { error: 'expected a list of alerts' })
    .max(1000, 'expected at most 1000 alerts'),
});

export type Alert = z.output<typeof alertSchema>;
export type AlertmanagerWebhook = z.output<typeof webhookSchema>;

export type AlertConversion =
  | {
      ok: true;
      host: string;
      /** The alert's service label as it came (null: none), to be routed to a service (routeService). */
      service: string | null;
      symptom: SymptomInput & { id: string };
    }
  | { ok: false; fingerprint: string; reason: string };

/** A startsAt before this year is a broken clock or Go's zero time (`0001-01-01T00:00:00Z`), not an alert. */
export const MIN_STARTS_AT_YEAR = 2000;
const MAX_STARTS_AT_YEAR = 9999;

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

export type NormalizedTime = { ok: true; text: string } | { ok: false; reason: string };

/**
 * The instant an RFC 3339 time names, written the way Alertmanager (Go's RFC3339Nano, in UTC) writes it:
 * `2026-11-28T03:04:05.123456789Z`, trailing zeros of the fraction dropped, no fraction when it is zero.
 * So `…03:04:05Z`, `…03:04:05.000Z`, `…03:04:05+00:00` and `…05:04:05+02:00` are one instant and one id.
 *
 * Why not `Date#toISOString()`: it keeps milliseconds only, and ids used to be the raw text. Alertmanager
 * sends UTC with nanoseconds, so after an upgrade an alert delivered before it and repeated by
 * Alertmanager would get a new id and count again. Written as Go writes it, that usual spelling keeps its
 * old id; only unusual spellings (another zone, trailing zeros) change, once. The fraction is kept as
 * digits (up to nanoseconds, as Go keeps it), never rounded through a float.
 */
export function normalizeStartsAt(text: string): NormalizedTime {
  const m = RFC3339.exec(text);
  if (!m) return { ok: false, reason: 'expected an RFC 3339 time with zone' };
  // The zone moves whole minutes, so only the whole seconds go through Date; the fraction stays as is.
  const ms = Date.parse(`${m[1]}${m[3]}`);
  const year = new Date(ms).getUTCFullYear();
  if (!Number.isFinite(ms) || year < MIN_STARTS_AT_YEAR || year > MAX_STARTS_AT_YEAR) {
    return {
      ok: false,
      reason: `expected a time in the years ${MIN_STARTS_AT_YEAR} to ${MAX_STARTS_AT_YEAR} (UTC)`,
    };
  }
  const fraction = (m[2] ?? '').slice(0, 9).replace(/0+$/, '');
  return { ok: true, text: `${new Date(ms).toISOString().slice(0, 19)}${fraction ? `.${fraction}` : ''}Z` };
}

/** `gpu-7:9100` → `gpu-7`; `[fe80::1]:9100` and other non-host values → null. */
export function hostFromInstance(instance: string): string | null {
  const host = instance.replace(/:\d{1,5}$/, '');
  return isValidHost(host) ? host : null;
}

/** One alert → one symptom for a host, or the reason it cannot be one. */
export function alertToSymptom(
  alert: Alert,
  opts: { kindLabel: string; defaultHost: string; serviceLabel?: string },
): AlertConversion {
  const { fingerprint } = alert;
  const kind = alert.labels[opts.kindLabel];
  if (kind === undefined)
    return { ok: false, fingerprint, reason: `no "${opts.kindLabel}" label to take the symptom kind from` };
  if (!isValidKind(kind))
    return {
      ok: false,
      fingerprint,
      reason: `label ${opts.kindLabel}=${JSON.stringify(kind)}: expected ${KIND_EXPECTED}`,
    };
  let host = opts.defaultHost;
  if (alert.labels.host !== undefined) {
    if (!isValidHost(alert.labels.host)) {
      return {
        ok: false,
        fingerprint,
        reason: `label host=${JSON.stringify(alert.labels.host)}: expected ${HOST_EXPECTED}`,
      };
    }
    host = alert.labels.host;
  } else if (alert.labels.instance !== undefined) {
    host = hostFromInstance(alert.labels.instance) ?? opts.defaultHost;
  }
  const startsAt = normalizeStartsAt(alert.startsAt);
  if (!startsAt.ok) {
    return {
      ok: false,
      fingerprint,
      reason: `startsAt ${JSON.stringify(alert.startsAt)}: ${startsAt.reason}`,
    };
  }
  const summary = alert.annotations?.summary ?? alert.annotations?.description;
  const family = alert.labels.kloros_family;
  const symptom = {
    kind,
    id: `alertmanager:${fingerprint}:${startsAt.text}`,
    eventTime: startsAt.text,
    source: 'alertmanager',
    details: {
      ...(family !== undefined ? { family: cleanLine(family, 64) } : {}),
      ...(summary !== undefined ? { text: cleanText(summary, 2000) } : {}),
    },
  };
  const parsed = parseSymptom(symptom);
  if (!parsed.ok) return { ok: false, fingerprint, reason: parsed.error };
  const service = alert.labels[opts.serviceLabel ?? DEFAULT_SERVICE_LABEL] ?? null;
  return { ok: true, host, service, symptom };
}
