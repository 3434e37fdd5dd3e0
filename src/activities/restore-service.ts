// The restoreService activity: after a failed, timed-out or cancelled canary, put the lease's backup back,
// restart the service and wait until it is healthy, through the service's ServiceAdapter. Idempotent and retried by the workflow (up to
// RESTORE_MAX_ATTEMPTS): every step checks what is already done.
//
//  - backup of the lease there: put it back (no write when the config already holds it); restart unless the
//    canary never got as far as its restart and the service is healthy;
//  - no backup (the canary stopped before its backup): the config must still be the original (the lease
//    record's hash); then only make sure the service is healthy;
//  - a restore that finished is recorded in the lease record: a repeat returns the same downtime, no restart.
//
// What retrying cannot fix — no backup while the config differs from the original, a restart command that
// does not exist, still unhealthy on the last attempt — is thrown as non-retryable RESTORE_FAILED, which
// latches the host until an operator acknowledges. Anything else is a retryable failure.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { RESTORE_FAILED } from '../domain/failure-types.js';
import { sha256 } from '../service/config-file.js';
import { abortReason } from '../service/health.js';
import { RestartCommandError } from '../service/restart-command.js';
import type { ServiceAdapter } from '../service/service-adapter.js';
import { crashPoint } from './crash-point.js';
import { Progress, type RestorePhase, shorten } from './progress.js';
import type { RestoreInput, RestoreResult } from './types.js';

/** The retry policy for restoreService allows this many attempts (RESTORE_ACTIVITY_OPTIONS, src/workflows/activity-options.ts). */
export const RESTORE_MAX_ATTEMPTS = 6;

/** ApplicationFailure type of a restore attempt that failed but may work when retried. */
export const RESTORE_INCOMPLETE = 'RestoreIncomplete';

export interface RestoreServiceDeps {
  service: ServiceAdapter;
  /** The attempt that is the last one (default {@link RESTORE_MAX_ATTEMPTS}). */
  maxAttempts?: number;
}

/** A failure no retry can fix. */
class Unfixable extends Error {}

export function createRestoreService(
  deps: RestoreServiceDeps,
): (input: RestoreInput) => Promise<RestoreResult> {
  const { service } = deps;
  const maxAttempts = deps.maxAttempts ?? RESTORE_MAX_ATTEMPTS;

  return async function restoreService(input: RestoreInput): Promise<RestoreResult> {
    const ctx = Context.current();
    const signal = ctx.cancellationSignal;
    const attempt = ctx.info.attempt;
    const lastAttempt = attempt >= maxAttempts;
    const { configPath } = service;
    const progress = new Progress<RestorePhase>(ctx, { leaseId: input.leaseId, attempt }).start();
    const healthy = async () => (await service.checkHealth(5_000, signal)).ok;

    try {
      progress.enter('restore');
      const record = await service.readLeaseRecord(input.leaseId);
      const current = await service.readConfigIfAny();

      // The recovery of an abandoned canary keeps a candidate that passed and was promoted on disk.
      if (input.keepPromotion && record?.promotedAt !== undefined) {
        ctx.log.info('restore: the canary had promoted its candidate; kept', { leaseId: input.leaseId });
        return { downtimeMs: 0, keptPromotion: true };
      }

      // Done before (a retry after the worker lost the result): same answer, nothing touched.
      if (
        record?.restored &&
        current !== null &&
        sha256(current) === record.restored.configSha256 &&
        (await healthy())
      ) {
        return { downtimeMs: record.restored.downtimeMs };
      }

      let mustRestart: boolean;
      if ((await service.readBackup(input.leaseId)) !== null) {
        const { changed } = await service.restoreBackup(input.leaseId);
        progress.note({ configRewritten: changed });
        // Without a record (older files) the service may run anything: restart.
        mustRestart = changed || record === null || record.restartRequestedAt !== undefined;
      } else {
        if (record !== null && (current === null || sha256(current) !== record.originalSha256)) {
          throw new Unfixable(
            `no backup of ${configPath} for lease ${input.leaseId} and the config ${current === null ? 'is missing' : 'differs from the one before the canary'} (sha256 ${current === null ? '-' : sha256(current).slice(0, 12)} ≠ ${record.originalSha256.slice(0, 12)}): put the right config back by hand, restart the service, then acknowledge`,
          );
        }
        // The canary never took its backup: the config was never touched.
        mustRestart = record?.restartRequestedAt !== undefined;
      }
      signal.throwIfAborted();

      let downtimeMs = 0;
      if (!mustRestart && (await healthy())) {
        ctx.log.info('restore: config unchanged and service healthy, no restart', { leaseId: input.leaseId });
      } else {
        progress.enter('restart');
        crashPoint('restore:restart');
        const restartStarted = performance.now();
        // Only the new process's log counts (the old one may print a last failure while it is stopped).
        const { logMark } = await service.restart(signal);
        progress.enter('health');
        crashPoint('restore:health');
        const health = await service.waitHealthy({
          deadlineMs: service.restartTimeoutMs - (performance.now() - restartStarted),
          logMark,
          signal,
          onPoll: (lastAnswer) => progress.note({ lastAnswer }),
        });
        if (!health.healthy) {
          throw new Error(
            health.why === 'log'
              ? `the service failed to start after the restore; its log says: ${shorten(health.logLine ?? '')}`
              : `the service was not healthy within ${service.restartTimeoutMs} ms of the restart (last answer: ${health.lastAnswer})${health.logLine ? `; its log says: ${shorten(health.logLine)}` : ''}`,
          );
        }
        downtimeMs = Math.round(performance.now() - restartStarted);
      }

      if (record !== null) {
        const after = await service.readConfigIfAny();
        await service.writeLeaseRecord({
          ...record,
          restored: {
            at: new Date().toISOString(),
            downtimeMs,
            configSha256: after === null ? '' : sha256(after),
          },
        });
      }
      ctx.log.info('service restored', { leaseId: input.leaseId, downtimeMs, reason: input.reason });
      return { downtimeMs };
    } catch (err) {
      if (signal.aborted) throw abortReason(signal);
      if (err instanceof ApplicationFailure) throw err;
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof Unfixable || (err instanceof RestartCommandError && err.kind === 'not_found')) {
        throw ApplicationFailure.create({ message, type: RESTORE_FAILED, nonRetryable: true });
      }
      if (lastAttempt) {
        throw ApplicationFailure.create({
          message: `restore failed on the last attempt (${attempt} of ${maxAttempts}): ${message}`,
          type: RESTORE_FAILED,
          nonRetryable: true,
        });
      }
      throw ApplicationFailure.create({
        message: `restore attempt ${attempt} of ${maxAttempts} failed: ${message}`,
        type: RESTORE_INCOMPLETE,
        nonRetryable: false,
      });
    } finally {
      progress.stop();
    }
  };
}
