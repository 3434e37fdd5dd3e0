// Schemas of everything a workflow takes in besides symptoms (those are src/domain/symptom.ts): start
// inputs and the state they carry across continue-as-new, the lease messages between the workflows, and
// operator actions. Anyone who can reach the namespace can send any of these with any content, so each is
// checked before the workflow relies on its shape: no payload may fail a workflow task.
//
// Carried state is written by this code (or the release before it), so its schemas are loose: unknown
// fields are kept (a newer release may have added them), only the fields this code reads are checked.
import { z } from 'zod';
import { describeIssues, symptomDetailsSchema } from '../domain/symptom.js';
import { isDecisionCode } from '../domain/decision-codes.js';
import { LEGACY_CODE } from '../domain/decision-log.js';
import { REFUSAL_CODES } from '../domain/host-ledger.js';
import { SERVICE_EXPECTED, isValidService } from '../domain/identifiers.js';
import { undecodableReason } from './payload-converter.js';

export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

/** Validate `payload` with `schema`: the value, or why not (an unreadable payload says so). */
export function check<T>(schema: z.ZodType<T>, payload: unknown): Checked<T> {
  const undecodable = undecodableReason(payload);
  if (undecodable !== null) return { ok: false, error: `payload: ${undecodable}` };
  const result = schema.safeParse(payload);
  return result.success
    ? { ok: true, value: result.data }
    : { ok: false, error: describeIssues(result.error.issues) };
}

const finite = z.number().finite();
const count = z.number().int().min(0);
const ms = finite;
const nullableMs = finite.nullable();
/** One line of printable text of bounded length: it ends up in decisions and the Web UI. */
const line = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    // eslint-disable-next-line no-control-regex
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'control characters are not allowed');
const text = z.string().max(10_000);

export const operatorActionSchema = z.strictObject({
  by: line(500).refine((s) => s.trim() !== '', 'expected who asks'),
  reason: line(500).refine((s) => s.trim() !== '', 'expected why'),
});

// ------------------------------------------------------------------ lease messages

export const leaseRequestSchema = z.strictObject({
  requestId: line(200),
  holderWorkflowId: line(1000),
  service: z.string().refine(isValidService, SERVICE_EXPECTED).nullable().optional(),
  kind: line(64),
  predictedDowntimeMs: finite.positive().max(86_400_000),
});

const configValue = z.union([z.string(), finite, z.boolean()]);

const canaryAuditSchema = z.looseObject({
  candidateId: text,
  changes: z.record(z.string(), configValue),
  reason: text,
  canaryDowntimeMs: ms,
  restoreDowntimeMs: nullableMs,
  measuredVramMb: nullableMs,
});

export const leaseReleaseSchema = z.strictObject({
  leaseId: line(200),
  downtimeMs: finite.min(0).max(86_400_000),
  outcome: z.enum([
    'promoted',
    'restored',
    'restore_failed',
    'not_started',
    'rolled_back',
    'rollback_failed',
  ]),
  restoreFailure: text.optional(),
  canary: canaryAuditSchema.optional(),
});

export const leaseDecisionSchema = z.looseObject({
  requestId: line(200),
  granted: z.boolean(),
  leaseId: line(200).optional(),
  reason: text,
  // An unknown code (a newer coordinator) is dropped, not refused: the answer itself still counts.
  refusal: z.enum(REFUSAL_CODES).optional().catch(undefined),
  retryAt: nullableMs.optional(),
  budgetLeftMs: ms,
  budgetTotalMs: ms,
  cooldownUntil: nullableMs,
});

export const operatorLeaseRequestSchema = z.strictObject({
  requestId: line(200),
  purpose: z.literal('rollback'),
  by: line(500),
  reason: line(500),
  predictedDowntimeMs: finite.positive().max(86_400_000),
});

// ------------------------------------------------------------------ carried state

const decisionSchema = z
  .looseObject({
    at: ms,
    // Decisions of 0.1 and 0.2 have no code: they keep their words, coded as legacy.
    code: z.string().max(64).optional(),
    topic: z.string(),
    taken: z.boolean(),
    action: text,
    reason: text,
    by: text.optional(),
    repeats: count.optional(),
  })
  // A code this release does not know (or none) keeps its words as legacy, without params to misread.
  .transform(({ code, params, ...d }) =>
    code !== undefined && isDecisionCode(code) ? { ...d, code, params } : { ...d, code: LEGACY_CODE },
  );

const histogramSchema = z.looseObject({ counts: z.array(count), sumMs: finite, count: count });
const countsSchema = z.record(z.string(), count);

const candidateSchema = z.looseObject({
  id: text,
  changes: z.record(z.string(), configValue),
  predictedVramMb: finite,
  predictedKvMb: finite.optional(),
  predictedKvTokens: finite.optional(),
  mustBeMeasured: z.literal(true).optional(),
  headroomMb: finite,
  fits: z.boolean(),
  predictedDowntimeMs: finite,
  givesUp: text,
  why: text,
});

const canaryRecordSchema = z.looseObject({
  at: ms,
  candidateId: text,
  changes: z.record(z.string(), configValue),
  outcome: z.enum(['promoted', 'restored', 'restore_failed', 'cancelled']),
  reason: text,
  downtimeMs: finite,
  measuredVramMb: nullableMs,
  prediction: z.looseObject({ predictedKvMb: finite, measuredKvMb: finite, errorRatio: finite }).optional(),
});

const calibrationSchema = z.looseObject({
  vllmVersion: text.nullable(),
  measuredKvMb: finite.nullable(),
  measuredKvTokens: finite.nullable(),
  measuredWeightsMb: finite.nullable(),
  predictedKvMb: finite,
  predictedWeightsMb: finite,
  kvErrorRatio: finite.nullable(),
});

const windowOccurrenceSchema = z.looseObject({ opensAt: ms, closesAt: ms });

export const carriedHealingStateSchema = z.looseObject({
  window: z.looseObject({
    events: z.array(ms),
    buckets: z.array(z.tuple([ms, count])),
    ids: z.array(z.tuple([z.string(), ms])),
  }),
  lastSymptomAt: nullableMs,
  forced: z.looseObject({ by: text, reason: text, at: ms }).nullable(),
  armedAt: nullableMs,
  attempts: count,
  lastCanary: canaryRecordSchema.nullable(),
  recommendation: z
    .looseObject({
      at: text,
      basis: text,
      candidates: z.array(candidateSchema),
      calibration: calibrationSchema.optional(),
    })
    .nullable(),
  lastPredictedAt: nullableMs,
  lastSymptomDetails: symptomDetailsSchema.nullable(),
  hostFigures: z
    .looseObject({ budgetLeftMs: ms, budgetTotalMs: ms, cooldownUntil: nullableMs, asOf: ms })
    .nullable(),
  decisions: z.array(decisionSchema),
  totals: z.looseObject({ counted: count, duplicates: count, stale: count, rejected: count }),
  counters: z
    .looseObject({
      canaryRuns: countsSchema,
      canaryDowntime: histogramSchema,
      refused: countsSchema,
      missedWindows: count.optional(),
    })
    .optional(),
  /** The window an armed escalation is being offered (missed-window tracking); absent before 0.2. */
  offered: windowOccurrenceSchema.extend({ canaryRan: z.boolean() }).nullable().optional(),
  runs: count,
});

const leaseSchema = z.looseObject({
  leaseId: text,
  holderWorkflowId: text,
  kind: text,
  grantedAt: ms,
  expiresAt: ms,
  predictedDowntimeMs: finite,
  budgetLeftMs: finite,
  windowOpensAt: ms,
  windowClosesAt: ms,
});

const operatorMarkSchema = z.looseObject({ at: ms, by: text, reason: text });

export const carriedHostStateSchema = z.looseObject({
  ledger: z.looseObject({
    ledger: z.looseObject({ windowOpensAt: nullableMs, spentMs: finite, overrunMs: finite, canaries: count }),
    cooldownUntil: nullableMs,
    lease: leaseSchema.nullable(),
    paused: operatorMarkSchema.nullable(),
    restoreFailure: z.looseObject({ at: ms, kind: text, message: text }).nullable(),
    canaryStarts: z.array(ms).optional(),
  }),
  decisions: z.array(decisionSchema),
  answered: z.array(z.tuple([z.string(), leaseDecisionSchema])),
  counters: z.looseObject({ leaseRefusals: countsSchema, overrunMs: finite }).optional(),
  runs: count,
});
