// Alertmanager's webhook payload (version 4) and how its firing alerts become symptoms. Resolved alerts
// are ignored: a symptom is an event, and the event is the alert starting to fire. The id is the
// alert's fingerprint plus its start time, so the webhook's repeats of one firing alert count once,
// while the same alert firing again later (a new startsAt) counts again.
import { z } from 'zod';
import { HOST_EXPECTED, KIND_EXPECTED, isValidHost, isValidKind } from '../domain/identifiers.js';
import { type SymptomInput, parseSymptom } from '../domain/symptom.js';

export const DEFAULT_KIND_LABEL = 'kloros_kind';

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
  | { ok: true; host: string; symptom: SymptomInput & { id: string } }
  | { ok: false; fingerprint: string; reason: string };

/** `gpu-7:9100` → `gpu-7`; `[fe80::1]:9100` and other non-host values → null. */
export function hostFromInstance(instance: string): string | null {
  const host = instance.replace(/:\d{1,5}$/, '');
  return isValidHost(host) ? host : null;
}

/** Printable text for a symptom's details (control characters become spaces), at most `max` characters. */
export function printableText(text: string, max: number): string {
  return (
    text
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u001f\u007f]+/g, ' ')
      .trim()
      .slice(0, max)
  );
}

/** One alert → one symptom for a host, or the reason it cannot be one. */
export function alertToSymptom(
  alert: Alert,
  opts: { kindLabel: string; defaultHost: string },
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
  const summary = alert.annotations?.summary ?? alert.annotations?.description;
  const family = alert.labels.kloros_family;
  const symptom = {
    kind,
    id: `alertmanager:${fingerprint}:${alert.startsAt}`,
    eventTime: alert.startsAt,
    source: 'alertmanager',
    details: {
      ...(family !== undefined ? { family: printableText(family, 64) } : {}),
      ...(summary !== undefined ? { text: printableText(summary, 2000) } : {}),
    },
  };
  const parsed = parseSymptom(symptom);
  if (!parsed.ok) return { ok: false, fingerprint, reason: parsed.error };
  return { ok: true, host, symptom };
}
