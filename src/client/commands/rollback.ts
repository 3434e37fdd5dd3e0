// healctl rollback: put back the config the last promotion replaced (<backupDir>/<name>.previous, written by
// the canary's promotion), keep the config it replaces as <name>.rolled-back, restart the service with the
// worker's restart command and wait until it is healthy — the same ServiceAdapter as the canary and
// restoreService (src/service/service-adapter.ts).
// It holds the host's lease for the whole change, as a canary does (the coordinator refuses it while a canary
// runs, and charges its downtime to the budget); --force goes on without the lease only when the coordinator
// cannot be reached.
// Run it with the worker's environment (KLR_SERVICE_*, KLR_DATA_DIR, KLR_BACKUP_DIR).
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { shorten } from '../../activities/progress.js';
import { type ServiceSettings, loadServiceSettings } from '../../service/service-settings.js';
import { loadServices, routeService } from '../../service/services-file.js';
import { ConfigFileError, sha256 } from '../../service/config-file.js';
import { vllmService } from '../../service/vllm-service.js';
import { loadSettings } from '../../config/settings.js';
import type { LeaseRelease } from '../../domain/host-ledger.js';
import type { OperatorLeaseAnswer } from '../../workflows/host-coordinator-messages.js';
import { CliError } from '../cli/errors.js';
import { addHostOption, addServiceOption, hostFrom, operatorName, parseService } from '../cli/options.js';
import { diffConfigKeys, formatKeyChanges } from '../cli/config-diff.js';
import { CoordinatorUnreachable, acquireOperatorLease, releaseOperatorLease } from '../cli/operator-lease.js';
import { printData, wantsData } from '../cli/output.js';

interface RollbackOptions {
  host?: string;
  service?: string;
  restart: boolean;
  force?: boolean;
  reason?: string;
  by?: string;
  json?: boolean;
}

/**
 * The service to roll back and its settings: --service names one of KLR_SERVICES_FILE's (or the shortcut's
 * one); without it the legacy one, or the only one; no services configured: KLR_SERVICE_* as before.
 */
export function rollbackTarget(
  service: string | undefined,
  env: Record<string, string | undefined> = process.env,
): { name: string | null; settings: ServiceSettings } {
  const services = loadServices(env);
  if (services.length === 0) {
    if (service !== undefined)
      throw new CliError(
        `healctl rollback: --service ${service}: no services are configured here (KLR_SERVICES_FILE, or KLR_SERVICE_CONFIG): run it with the worker's environment`,
      );
    return { name: null, settings: loadServiceSettings(env) };
  }
  const all = services.map((s) => s.name).join(', ');
  if (service !== undefined) {
    const spec = services.find((s) => s.name === service);
    if (!spec)
      throw new CliError(
        `healctl rollback: unknown service "${service}": this host runs ${all} (--service one of: ${all})`,
      );
    return { name: spec.name, settings: spec.settings };
  }
  const routed = routeService(services, null);
  const spec = routed.ok ? services.find((s) => (s.legacyIds ? null : s.name) === routed.service) : undefined;
  if (!spec)
    throw new CliError(
      `healctl rollback: this host runs several services (${all}): say which with --service one of: ${all}`,
    );
  return { name: spec.name, settings: spec.settings };
}

export function registerRollbackCommand(program: Command): void {
  addServiceOption(
    addHostOption(
      program
        .command('rollback')
        .description(
          'Put back the vLLM config the last promotion replaced, restart the service and wait until it is healthy.',
        ),
    ),
    'the service of KLR_SERVICES_FILE to roll back, when the host runs several',
  )
    .option('--no-restart', 'only swap the config file; restart the service yourself')
    .option(
      '--force',
      "go on without the host's lease when its coordinator cannot be reached (Temporal or the worker down); never while a canary holds the host",
    )
    .option('--reason <text>', 'why, for the audit log')
    .option('--by <who>', 'who asks (default: $USER@hostname)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Uses the worker's settings: KLR_SERVICE_CONFIG, KLR_SERVICE_RESTART_CMD, KLR_SERVICE_URL,
KLR_SERVICE_RESTART_TIMEOUT, KLR_SERVICE_LOG, KLR_BACKUP_DIR, KLR_DATA_DIR (audit log).

Examples:
  set -a; . /etc/kloros-healing/worker.env; set +a
  healctl rollback --reason "promoted config slows long prompts"
  healctl rollback --no-restart        then: systemctl restart vllm
  healctl rollback --force             when the host's coordinator cannot be reached
  healctl rollback --service llama-70b  one of the services of KLR_SERVICES_FILE

A second rollback finds the config already rolled back and changes nothing. The replaced config is
kept as <KLR_BACKUP_DIR>/<config name>.rolled-back.`,
    )
    .action(async (opts: RollbackOptions) => {
      const host = hostFrom(opts, 'rollback');
      const target = rollbackTarget(parseService(opts.service, 'rollback'));
      const settings = loadSettings();
      // Loaded here, like every process runner (execa): the other commands need none.
      const { createMeasureVram } = await import('../../activities/measure-vram.js');
      const service = vllmService(target.settings, { measureVram: createMeasureVram() });
      const by = operatorName(opts.by);
      // The host's lease, like a canary's: never beside a canary, and the downtime goes to the budget.
      let lease: OperatorLeaseAnswer | null = null;
      try {
        lease = await acquireOperatorLease('rollback', host, {
          by,
          reason:
            opts.reason ?? `healctl rollback${target.name === null ? '' : ` of service ${target.name}`}`,
          predictedDowntimeMs: opts.restart ? service.restartTimeoutMs : 1_000,
        });
      } catch (err) {
        if (!(err instanceof CoordinatorUnreachable)) throw err;
        if (!opts.force) {
          throw new CliError(
            `healctl rollback: cannot take the lease of ${host}: ${err.message}. Pass --force to go on without it (nothing then stops a canary from starting meanwhile, and the downtime is charged to no budget)`,
          );
        }
        process.stderr.write(
          `healctl rollback: --force: going on without the host's lease (${err.message}); the downtime is charged to no budget\n`,
        );
      }
      if (lease !== null && !lease.granted) throw new CliError(`healctl rollback: refused: ${lease.reason}`);
      const leaseId = lease?.leaseId ?? null;
      // Whatever happens from here on, the lease goes back with the downtime caused: a failed rollback
      // latches the host like a failed restore (the service may be down), one that changed nothing does not
      // start the cooldown.
      let release: LeaseRelease = { leaseId: leaseId ?? '', downtimeMs: 0, outcome: 'not_started' };
      try {
        const before = await service.readConfigIfAny();
        let result;
        try {
          result = await service.rollbackToPrevious();
        } catch (err) {
          if (err instanceof ConfigFileError) throw new CliError(`healctl rollback: ${err.message}`);
          throw err;
        }
        const after = await service.readConfigIfAny();
        const changes =
          before !== null && after !== null
            ? diffConfigKeys(before.toString('utf8'), after.toString('utf8'))
            : null;

        let restart: { downtimeMs: number } | null = null;
        let failure: string | null = null;
        let started: number | null = null;
        if (opts.restart) {
          started = performance.now();
          const restartStarted = started;
          // The restart command runs in a process group of its own, which Ctrl-C does not reach: the first
          // SIGINT/SIGTERM stops it (and its children) and is recorded as the failure; a second one kills healctl.
          const interrupted = new AbortController();
          const onSignal = (sig: NodeJS.Signals) =>
            interrupted.abort(new Error(`the restart was interrupted (${sig})`));
          process.once('SIGINT', onSignal);
          process.once('SIGTERM', onSignal);
          try {
            const { logMark } = await service.restart(interrupted.signal);
            const health = await service.waitHealthy({
              deadlineMs: service.restartTimeoutMs - (performance.now() - restartStarted),
              logMark,
              signal: interrupted.signal,
            });
            if (health.healthy) restart = { downtimeMs: Math.round(performance.now() - restartStarted) };
            else
              failure =
                health.why === 'log'
                  ? `the service failed to start; its log says: ${shorten(health.logLine ?? '')}`
                  : `the service was not healthy within ${service.restartTimeoutMs} ms (last answer: ${health.lastAnswer})`;
          } catch (err) {
            failure = err instanceof Error ? err.message : String(err);
          } finally {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
          }
        }

        release = {
          leaseId: leaseId ?? '',
          downtimeMs: restart?.downtimeMs ?? (started === null ? 0 : Math.round(performance.now() - started)),
          outcome: failure === null ? 'rolled_back' : 'rollback_failed',
          ...(failure === null ? {} : { restoreFailure: `healctl rollback by ${by}: ${failure}` }),
        };
        const record = {
          at: new Date().toISOString(),
          type: 'rollback',
          host,
          service: target.name,
          by,
          reason: opts.reason ?? null,
          forced: opts.force ?? false,
          leaseId,
          configPath: service.configPath,
          previousPath: result.previousPath,
          rolledBackPath: result.rolledBackPath,
          changed: result.changed,
          configSha256Before: before === null ? null : sha256(before),
          configSha256After: after === null ? null : sha256(after),
          changes,
          restarted: opts.restart,
          healthy: restart !== null,
          downtimeMs: restart?.downtimeMs ?? null,
          failure,
        };
        const auditDir = join(settings.dataDir, 'audit');
        await mkdir(auditDir, { recursive: true });
        await appendFile(join(auditDir, `rollback-${host}.jsonl`), JSON.stringify(record) + '\n', {
          mode: 0o640,
        });

        if (wantsData(opts)) printData(record);
        else {
          const lines = [
            result.changed
              ? `rolled back ${service.configPath} to ${result.previousPath}${result.rolledBackPath ? ` (the replaced config is kept as ${result.rolledBackPath})` : ''}`
              : `${service.configPath} already is the previous config (${result.previousPath}): nothing written`,
          ];
          if (changes && changes.length > 0) lines.push(formatKeyChanges(changes));
          if (!opts.restart)
            lines.push('not restarted (--no-restart): restart the service to run this config');
          else if (restart)
            lines.push(`service restarted and healthy after ${(restart.downtimeMs / 1000).toFixed(3)} s`);
          process.stdout.write(lines.join('\n') + '\n');
        }
        if (failure !== null) {
          throw new CliError(
            `healctl rollback: the config was rolled back but ${failure}. Check the service (${service.baseUrl}/health)${result.rolledBackPath ? `; the config it replaced is ${result.rolledBackPath}` : ''}${leaseId ? `; canaries on ${host} stop until \`healctl ack ${host}\`` : ''}`,
          );
        }
      } finally {
        if (leaseId !== null) {
          const problem = await releaseOperatorLease(host, release);
          if (problem !== null) process.stderr.write(`healctl rollback: ${problem}\n`);
        }
      }
    });
}
