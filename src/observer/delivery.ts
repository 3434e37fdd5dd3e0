// Delivers symptoms to HealingWorkflow(host, kind) by update-with-start, with the symptom id as the
// update id, so a redelivery is answered rather than counted again (the workflow also dedups by id).
// While Temporal cannot be reached the symptom goes to the on-disk spool, and a background drainer
// delivers the spool in order, with backoff, acknowledging each record after its delivery. Once the
// spool holds anything, new symptoms queue behind it, so order is kept. A symptom the workflow rejects
// (its update validator) is written to a dead-letter file and skipped: it never blocks the spool.
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Client,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  isGrpcServiceError,
} from '@temporalio/client';
import { type TemporalTarget, loadTemporalTarget } from '../config/temporal-connection.js';
import { HOST_EXPECTED, SERVICE_EXPECTED, isValidHost, isValidService } from '../domain/identifiers.js';
import { MAX_FUTURE_SKEW_MS, type SymptomInput, eventTimeMs, parseSymptom } from '../domain/symptom.js';
import type { RecordSymptomResult } from '../workflows/healing-messages.js';
import { SymptomAddressError, recordSymptom, signalSymptom } from '../temporal/symptoms.js';
import { connectClient } from '../temporal/temporal-client.js';
import type { DeliveryErrorReason } from './observer-metrics.js';
import { Spool, SpoolFullError } from './spool.js';
import type { SymptomSink } from './types.js';

export { SpoolFullError };

export type IdentifiedSymptom = SymptomInput & { id: string };

/** What happened to one symptom handed to {@link SymptomDelivery.submit}. */
export type SubmitOutcome =
  /**
   * `result` is the workflow's answer; null when no worker took the update in time and the symptom was
   * signalled instead: it is in the workflow's history, and counted as soon as its worker runs.
   */
  (
    | { status: 'delivered'; id: string; host: string; result: RecordSymptomResult | null }
    | { status: 'spooled'; id: string; host: string; pending: number }
    | { status: 'rejected'; id: string; host: string; reason: string }
  ) & {
    /** The workflow-id service it went to (null or absent: the legacy ids, kloros-healing/<host>/<kind>). */
    service?: string | null;
  };

export interface DeliveryStats {
  delivered: number;
  spooled: number;
  rejected: number;
  /** Symptoms refused because the spool was full (never dropped silently: the caller got an error). */
  spoolFull: number;
  pending: number;
  pendingBytes: number;
  maxBytes: number;
  /** The last reason Temporal could not be reached, while it cannot; null once a delivery succeeds. */
  unreachable: string | null;
}

export interface SymptomDelivery extends SymptomSink {
  /**
   * Delivers (or spools) one symptom for `host` (default: the delivery's host) and `service` (the
   * workflow-id service; default null: the legacy ids) and says what happened.
   * Resolves only once the symptom is delivered, durably spooled, or rejected and dead-lettered.
   * Throws {@link SpoolFullError} when it could be neither delivered nor stored.
   */
  submit(symptom: IdentifiedSymptom, host?: string, service?: string | null): Promise<SubmitOutcome>;
  /** Resolves once the spool is empty (true), or after `timeoutMs` (false). */
  whenDrained(timeoutMs: number): Promise<boolean>;
  stats(): DeliveryStats;
  readonly spoolDir: string;
}

export interface DeliveryLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Told of each event as it happens (the observer's metrics count them). */
export interface DeliveryEvents {
  delivered(): void;
  spooled(): void;
  failed(reason: DeliveryErrorReason): void;
}

export interface SymptomDeliveryOptions {
  /** The GPU host whose HealingWorkflows receive symptoms that do not name another host. */
  host: string;
  /** How to reach Temporal (default: Temporal's env/TOML conventions). Ignored when `connect` is given. */
  target?: TemporalTarget;
  /** Makes a connected client; each one it returns is owned, and closed, by the delivery. */
  connect?: () => Promise<Client>;
  /** The spool directory (one delivery per directory: it is locked). */
  spoolDir: string;
  log: DeliveryLog;
  /** Most bytes the spool may hold (default 256 MiB). */
  spoolMaxBytes?: number;
  /** How long one delivery attempt may take before the symptom is spooled instead (default 10 s). */
  attemptTimeoutMs?: number;
  /** Drainer backoff between failed attempts: from `initialMs`, doubling, up to `maxMs` (0.5 s → 30 s). */
  backoff?: { initialMs?: number; maxMs?: number };
  events?: DeliveryEvents;
}

export interface SpoolRecord {
  host: string;
  /**
   * The workflow-id service (null: the legacy ids). Absent in records spooled by a single-service release:
   * read as null, which is where those symptoms went.
   */
  service?: string | null;
  symptom: IdentifiedSymptom;
  /** When it was spooled (epoch ms), for the logs. */
  spooledAt: number;
}

export const DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024;
const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;
/** While Temporal stays unreachable, repeat the warning at most this often. */
const WARN_EVERY_MS = 60_000;

// ---- pure parts ------------------------------------------------------------------------------------

/** Why this symptom can never be delivered (checked before it is spooled), or null. */
export function symptomProblem(
  host: string,
  symptom: unknown,
  nowMs: number,
  service: string | null = null,
): string | null {
  if (!isValidHost(host)) return `host: expected ${HOST_EXPECTED}`;
  if (service !== null && !isValidService(service)) return `service: expected ${SERVICE_EXPECTED}`;
  const parsed = parseSymptom(symptom);
  if (!parsed.ok) return parsed.error;
  if (parsed.symptom.id === undefined) return 'id: expected an idempotency id (a non-empty string)';
  const at = eventTimeMs(parsed.symptom, nowMs);
  if (at > nowMs + MAX_FUTURE_SKEW_MS) {
    return `eventTime: ${new Date(at).toISOString()} is more than ${MAX_FUTURE_SKEW_MS / 60_000} minutes in the future; check the sender's clock`;
  }
  return null;
}

/** gRPC status INVALID_ARGUMENT (the server refuses the request itself; resending cannot help). */
const GRPC_INVALID_ARGUMENT = 3;

export type DeliveryFailure = { kind: 'rejected'; reason: string } | { kind: 'transient'; reason: string };

/**
 * Rejected: the workflow's validator refused the symptom, or the server refused the request as invalid —
 * retrying cannot help. Everything else (refused connection, deadline, unavailable, a server restarting,
 * missing permissions that an operator will fix) is transient: the symptom waits in the spool.
 */
export function classifyDeliveryError(err: unknown): DeliveryFailure {
  if (err instanceof SymptomAddressError) return { kind: 'rejected', reason: err.message };
  if (err instanceof WorkflowUpdateFailedError) {
    const cause = err.cause instanceof Error ? err.cause.message : err.message;
    return { kind: 'rejected', reason: cause };
  }
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (isGrpcServiceError(e) && Number(e.code) === GRPC_INVALID_ARGUMENT) {
      return { kind: 'rejected', reason: e.details || e.message };
    }
  }
  return { kind: 'transient', reason: describeError(err) };
}

/** gRPC status codes that say why Temporal did not take a request (grpc/status.h). */
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_PERMISSION_DENIED = 7;
const GRPC_UNAVAILABLE = 14;
const GRPC_UNAUTHENTICATED = 16;

/**
 * The reason code of a transient failure, for the metrics: by where it happened (no connection could be
 * made, or a call on a connection failed) and the gRPC status code in the error's causes — never its text.
 */
export function transientReason(stage: 'connect' | 'call', err: unknown): DeliveryErrorReason {
  if (stage === 'connect') return 'connect';
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (!isGrpcServiceError(e)) continue;
    const code = Number(e.code);
    if (code === GRPC_DEADLINE_EXCEEDED) return 'deadline';
    if (code === GRPC_UNAVAILABLE) return 'unavailable';
    if (code === GRPC_PERMISSION_DENIED || code === GRPC_UNAUTHENTICATED) return 'auth';
  }
  return 'other';
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause =
    err.cause instanceof Error && err.cause.message !== err.message ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

/** Delay before retry number `attempt` (1-based): doubling from `initialMs`, capped, ±20 % jitter. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number, random = Math.random): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** `rejected/2026-11-28.jsonl`: one file per UTC day, so an operator can look at and prune them. */
export function deadLetterPath(spoolDir: string, nowMs: number): string {
  return join(spoolDir, 'rejected', `${new Date(nowMs).toISOString().slice(0, 10)}.jsonl`);
}

// ---- the delivery ----------------------------------------------------------------------------------

export async function createSymptomDelivery(options: SymptomDeliveryOptions): Promise<SymptomDelivery> {
  const { host, log, spoolDir } = options;
  const events = options.events;
  if (!isValidHost(host)) throw new Error(`delivery host ${JSON.stringify(host)}: expected ${HOST_EXPECTED}`);
  const attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  const initialMs = options.backoff?.initialMs ?? 500;
  const maxMs = options.backoff?.maxMs ?? 30_000;
  const connect =
    options.connect ??
    (() => {
      const target = options.target ?? loadTemporalTarget();
      return connectClient(target, Math.min(5_000, attemptTimeoutMs));
    });

  const deadLetter = async (record: object): Promise<void> => {
    const path = deadLetterPath(spoolDir, Date.now());
    await mkdir(join(spoolDir, 'rejected'), { recursive: true });
    const handle = await open(path, 'a', 0o600);
    try {
      await handle.write(`${JSON.stringify({ at: new Date().toISOString(), ...record })}\n`);
      await handle.datasync();
    } finally {
      await handle.close();
    }
  };

  const spool = await Spool.open<SpoolRecord>({
    dir: spoolDir,
    maxBytes: options.spoolMaxBytes ?? DEFAULT_SPOOL_MAX_BYTES,
    log,
    onCorrupt: (raw, where) => deadLetter({ reason: `corrupt spool line (${where})`, raw }),
  });

  const counts = { delivered: 0, spooled: 0, rejected: 0 };
  let unreachable: string | null = null;
  let unreachableWarnedAt = 0;
  let closing = false;
  const inFlight = new Set<Promise<unknown>>();

  // ---- the client: made on demand, dropped after a transient failure so the next try reconnects ----
  let client: Promise<Client> | undefined;
  const getClient = () => (client ??= connect());
  const dropClient = async () => {
    const current = client;
    client = undefined;
    if (current) await current.then((c) => c.connection.close()).catch(() => undefined);
  };

  const noteUnreachable = (reason: string) => {
    const now = Date.now();
    if (unreachable === null || now - unreachableWarnedAt >= WARN_EVERY_MS) {
      log.warn(
        { reason, pending: spool.pendingCount, spoolDir },
        'Temporal cannot be reached; symptoms are spooled and will be delivered when it is back',
      );
      unreachableWarnedAt = now;
    }
    unreachable = reason;
  };

  const noteReachable = () => {
    if (unreachable !== null) log.info({ pending: spool.pendingCount }, 'Temporal reachable again');
    unreachable = null;
  };

  type Attempt = { ok: true; result: RecordSymptomResult | null } | { ok: false; failure: DeliveryFailure };

  const failed = async (err: unknown, stage: 'connect' | 'call'): Promise<Attempt> => {
    const failure = classifyDeliveryError(err);
    if (failure.kind === 'transient') {
      // A rejection is counted where the symptom is dead-lettered (reject), with its own reason.
      events?.failed(transientReason(stage, err));
      noteUnreachable(failure.reason);
      await dropClient();
    } else {
      noteReachable();
    }
    return { ok: false, failure };
  };

  const attempt = async (
    to: string,
    service: string | null,
    symptom: IdentifiedSymptom,
  ): Promise<Attempt> => {
    let c: Client;
    try {
      c = await getClient();
    } catch (err) {
      return failed(err, 'connect');
    }
    try {
      const result = await c.connection.withDeadline(Date.now() + attemptTimeoutMs, () =>
        recordSymptom(c, to, symptom, service),
      );
      noteReachable();
      return { ok: true, result };
    } catch (err) {
      if (!(err instanceof WorkflowUpdateRPCTimeoutOrCancelledError)) return failed(err, 'call');
    }
    // The server answers but no worker took the update in time (the host's worker is down, or a host
    // that has none yet). A signal is durable as soon as the server has it, and the workflow counts
    // an id once — also if the update it had admitted is applied later — so the symptom need not wait.
    try {
      await c.connection.withDeadline(Date.now() + attemptTimeoutMs, () =>
        signalSymptom(c, to, symptom, service),
      );
      noteReachable();
      log.info(
        { host: to, service, id: symptom.id },
        'no worker took the update in time; symptom signalled instead',
      );
      return { ok: true, result: null };
    } catch (err) {
      return failed(err, 'call');
    }
  };

  const reject = async (
    to: string,
    service: string | null,
    symptom: unknown,
    reason: string,
    id: string,
    code: 'rejected' | 'invalid',
  ): Promise<SubmitOutcome> => {
    counts.rejected++;
    events?.failed(code);
    log.warn({ host: to, service, id, reason }, 'symptom rejected; recorded in the dead-letter file');
    await deadLetter({ host: to, service, reason, symptom });
    return { status: 'rejected', id, host: to, service, reason };
  };

  // ---- the drainer: delivers the spool in order -------------------------------------------------------
  let wake: (() => void) | undefined;
  const stopDrainer = new AbortController();
  const drainedWaiters = new Set<() => void>();
  const notifyDrained = () => {
    if (spool.pendingCount > 0) return;
    for (const resolve of drainedWaiters) resolve();
    drainedWaiters.clear();
  };

  const waitForWork = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      if (spool.pendingCount > 0 || stopDrainer.signal.aborted) resolve();
    });

  const drain = async (): Promise<void> => {
    let failures = 0;
    while (!stopDrainer.signal.aborted) {
      const entry = await spool.peek();
      if (!entry) {
        notifyDrained();
        await waitForWork();
        continue;
      }
      const { host: to, symptom } = entry.value;
      // A record of a single-service release has no service: it was for the legacy ids.
      const service = entry.value.service ?? null;
      const outcome = await attempt(to, service, symptom);
      if (outcome.ok) {
        await spool.ack(entry);
        counts.delivered++;
        events?.delivered();
        failures = 0;
        log.debug(
          { host: to, service, id: symptom.id, outcome: outcome.result?.outcome ?? 'signalled' },
          'spooled symptom delivered',
        );
        if (spool.pendingCount === 0) log.info({}, 'spool drained');
      } else if (outcome.failure.kind === 'rejected') {
        await reject(to, service, symptom, outcome.failure.reason, symptom.id, 'rejected');
        await spool.ack(entry);
        failures = 0;
      } else {
        failures++;
        await sleep(backoffMs(failures, initialMs, maxMs), undefined, { signal: stopDrainer.signal }).catch(
          () => undefined,
        );
      }
    }
  };

  const drainer = drain().catch((err: unknown) => {
    // A disk error while draining: stop the drainer loudly; the spool stays on disk for the next start.
    log.error({ error: (err as Error).message, spoolDir }, 'spool drainer stopped by an error');
  });

  // ---- the sink ---------------------------------------------------------------------------------------
  const spoolIt = async (
    to: string,
    service: string | null,
    symptom: IdentifiedSymptom,
  ): Promise<SubmitOutcome> => {
    try {
      await spool.append({ host: to, service, symptom, spooledAt: Date.now() });
    } catch (err) {
      if (err instanceof SpoolFullError) events?.failed('spool_full');
      throw err;
    }
    counts.spooled++;
    events?.spooled();
    wake?.();
    return { status: 'spooled', id: symptom.id, host: to, service, pending: spool.pendingCount };
  };

  const submitNow = async (
    symptom: IdentifiedSymptom,
    to: string,
    service: string | null,
  ): Promise<SubmitOutcome> => {
    const id = typeof symptom.id === 'string' ? symptom.id : '';
    const problem = symptomProblem(to, symptom, Date.now(), service);
    if (problem !== null) return reject(to, service, symptom, problem, id, 'invalid');
    // Anything already waiting goes first: queue behind it.
    if (spool.pendingCount > 0 || unreachable !== null) return spoolIt(to, service, symptom);
    const outcome = await attempt(to, service, symptom);
    if (outcome.ok) {
      counts.delivered++;
      events?.delivered();
      return { status: 'delivered', id, host: to, service, result: outcome.result };
    }
    if (outcome.failure.kind === 'rejected')
      return reject(to, service, symptom, outcome.failure.reason, id, 'rejected');
    return spoolIt(to, service, symptom);
  };

  const track = <R>(p: Promise<R>): Promise<R> => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p)).catch(() => undefined);
    return p;
  };

  const delivery: SymptomDelivery = {
    spoolDir,
    submit(symptom, to = host, service = null) {
      if (closing) return Promise.reject(new Error('symptom delivery is closed'));
      return track(submitNow(symptom, to, service));
    },
    async deliver(symptom) {
      // A rejected symptom is recorded (log + dead-letter file) and never stops the caller.
      await delivery.submit(symptom);
    },
    whenDrained(timeoutMs) {
      if (spool.pendingCount === 0) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          drainedWaiters.delete(done);
          resolve(false);
        }, timeoutMs);
        drainedWaiters.add(done);
      });
    },
    stats() {
      return {
        ...counts,
        spoolFull: spool.fullCount,
        pending: spool.pendingCount,
        pendingBytes: spool.pendingBytes,
        maxBytes: spool.maxBytes,
        unreachable,
      };
    },
    async close() {
      if (closing) return;
      closing = true;
      await Promise.allSettled([...inFlight]);
      stopDrainer.abort();
      wake?.();
      await drainer;
      await dropClient();
      await spool.close();
      if (spool.pendingCount > 0) {
        log.info({ pending: spool.pendingCount, spoolDir }, 'symptoms left in the spool for the next start');
      }
    },
  };
  return delivery;
}
