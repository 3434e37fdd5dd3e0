// The symptom payload shared by the `symptom` signal, the `recordSymptom` update and every door that
// feeds them (observer, CLI, HTTP). One schema, so every door rejects the same things the same way.
import { z } from 'zod';
import { KIND_EXPECTED, isValidKind, kindProblem } from './identifiers.js';

/** A symptom's event time more than this far ahead of the workflow's clock is rejected. */
export const MAX_FUTURE_SKEW_MS = 5 * 60_000;
/** Largest size a symptom may report (1 PiB in MiB): anything above is a unit mistake, not a GPU. */
export const MAX_SIZE_MB = 1024 ** 3;
const MAX_TEXT = 2000;

const sizeMb = z
  .number({ error: 'expected a number of MiB' })
  .finite('expected a finite number of MiB')
  .min(0, 'expected a size ≥ 0 MiB')
  .max(MAX_SIZE_MB, `expected a size ≤ ${MAX_SIZE_MB} MiB (is the unit bytes instead of MiB?)`);

/** Latest instant an event time may name: the end of year 9999, the last one ISO 8601 can write. */
export const MAX_EVENT_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * Bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E/F, U+061C): they make text read
 * differently from what it is (an id that shows as another), in a terminal as in the Web UI.
 */
export const BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/**
 * Any text made fit for a symptom's free-text field: terminal escapes and control characters out (tabs and
 * line breaks become spaces), bidirectional controls out, lone surrogates replaced, at most `max` UTF-16
 * units without cutting a character in two. The observer and the doors pass log lines and alert texts
 * through it, so that what they send is never refused for its characters.
 */
export function cleanText(text: string, max: number): string {
  const cleaned = text
    // eslint-disable-next-line no-control-regex
    .replace(/\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-_]/g, '')
    .replace(/[\t\n\r]+/g, ' ')
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u001f\u007f]/g, '')
    .replace(new RegExp(BIDI_CONTROLS.source, 'g'), '')
    .replace(/\p{Cs}/gu, '\ufffd')
    .trim();
  if (cleaned.length <= max) return cleaned;
  const cut = cleaned.slice(0, max);
  return /[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut;
}

/** {@link cleanText} for one-line names (family, source): invisible format characters out as well. */
export function cleanLine(text: string, max: number): string {
  return cleanText(text.replace(/\p{Cf}/gu, ''), max);
}

/** Printable text without control characters (a log line pasted in must not smuggle terminal escapes). */
const printable = (max: number) =>
  z
    .string({ error: 'expected a string' })
    .max(max, `expected at most ${max} characters`)
    // eslint-disable-next-line no-control-regex
    .refine((s) => !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(s), 'control characters are not allowed')
    .refine((s) => !BIDI_CONTROLS.test(s), 'bidirectional control characters (e.g. U+202E) are not allowed')
    .refine((s) => !/\p{Cs}/u.test(s), 'expected well-formed Unicode (a lone surrogate was found)');

/**
 * One line of printable text: ids and names end up in update ids, log lines and table cells, so no tab,
 * line break or invisible format character (zero-width space, joiner, BOM: two ids that look alike must be
 * alike).
 */
const oneLine = (max: number) =>
  printable(max)
    .refine((s) => !/[\t\n]/.test(s), 'tabs and line breaks are not allowed')
    // (bidirectional controls are format characters too, already refused above with their own reason)
    .refine(
      (s) => BIDI_CONTROLS.test(s) || !/\p{Cf}/u.test(s),
      'invisible format characters (e.g. U+200B) are not allowed',
    );

export const symptomDetailsSchema = z.strictObject({
  /** MiB the failed allocation was short of (vLLM's start-up check, allocator messages). */
  deficitMb: sizeMb.optional(),
  /** MiB the failed allocation asked for ("Tried to allocate ..."). */
  allocMb: sizeMb.optional(),
  /** MiB free on the GPU at the time of the failure. */
  freeMb: sizeMb.optional(),
  /** Total MiB of the GPU. */
  totalMb: sizeMb.optional(),
  /** Which family of failure this is (e.g. torch_oom, startup_free_memory, kv_cache_too_small). */
  family: oneLine(64).optional(),
  /** vLLM's own estimate of the largest max_model_len that fits, when it printed one. */
  estimatedMaxModelLen: z.number().int().positive().max(100_000_000).optional(),
  /** GPU index the failure happened on. */
  gpu: z.number().int().min(0).max(1024).optional(),
  /** Free text: the matched log line, an alert summary, a person's note. */
  text: printable(MAX_TEXT).optional(),
});

const eventTimeSchema = z.union(
  [
    z.iso.datetime({
      offset: true,
      error: 'expected an ISO 8601 date-time with zone, e.g. 2026-11-28T03:04:05Z',
    }),
    z
      .number()
      .int('expected epoch milliseconds (a whole number)')
      .min(0)
      .max(MAX_EVENT_TIME_MS, 'expected epoch milliseconds no later than the year 9999'),
  ],
  { error: 'expected an ISO 8601 date-time (e.g. 2026-11-28T03:04:05Z) or epoch milliseconds' },
);

export const symptomSchema = z.strictObject({
  kind: z
    .string({ error: `expected ${KIND_EXPECTED}` })
    .refine(isValidKind, { error: (issue) => kindProblem(String(issue.input)) }),
  /** When the symptom happened; omitted = when the workflow receives it. */
  eventTime: eventTimeSchema.optional(),
  /** Idempotency id: the same id twice counts once (the observer derives it from source and position). */
  id: oneLine(200).min(1, 'expected a non-empty id').optional(),
  /** Who reported it (observer, healctl, http, alertmanager, another service's name). */
  source: oneLine(128).optional(),
  details: symptomDetailsSchema.optional(),
});

export type SymptomInput = z.input<typeof symptomSchema>;
export type Symptom = z.output<typeof symptomSchema>;
export type SymptomDetails = z.output<typeof symptomDetailsSchema>;

export type SymptomParseResult = { ok: true; symptom: Symptom } | { ok: false; error: string };

/** Validate an untrusted payload; the error names each bad field and says what is expected. */
export function parseSymptom(payload: unknown): SymptomParseResult {
  const result = symptomSchema.safeParse(payload);
  if (result.success) return { ok: true, symptom: result.data };
  return { ok: false, error: describeIssues(result.error.issues) };
}

/** `details.allocMb: expected a size ≥ 0 MiB; kind: expected ...` — short enough for one log line. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.join('.') : 'payload';
      if (issue.code === 'unrecognized_keys') {
        return `${path}: unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
      }
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}

/** The event time in epoch ms, or the receive time when the symptom carries none. */
export function eventTimeMs(symptom: Symptom, receivedAtMs: number): number {
  if (symptom.eventTime === undefined) return receivedAtMs;
  return typeof symptom.eventTime === 'number' ? symptom.eventTime : Date.parse(symptom.eventTime);
}
