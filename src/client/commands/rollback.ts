// healctl rollback: put back the config the last promotion replaced (<backupDir>/<name>.previous, written by
// the canary's promotion), keep the config it replaces as <name>.rolled-back, restart the service with the
// worker's restart command and wait until it is healthy — the same steps and code as restoreService.
// Refuses while a canary holds the host's lease (the canary would restore over it) unless --force.
// Run it with the worker's environment (KLR_SERVICE_*, KLR_DATA_DIR, KLR_BACKUP_DIR).
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadServiceSettings } from '../../activities/service-settings.js';
import { shorten, waitHealthyWatchingLog } from '../../activities/run-canary.js';
import { ConfigFileError, readIfExists, rollbackToPrevious, sha256 } from '../../service/config-file.js';
import { LogWatcher } from '../../service/log-watch.js';
import { RestartCommandError, runRestartCommand } from '../../service/restart-command.js';
import { loadSettings } from '../../config/settings.js';
import { withClient } from '../cli/context.js';
import { CliError } from '../cli/errors.js';
import { printJson } from '../cli/format.js';
import { addHostOption, hostFrom, operatorName } from '../cli/options.js';
import { diffConfigKeys, formatKeyChanges } from '../cli/config-diff.js';
import { queryHostState } from '../cli/workflows.js';

interface RollbackOptions {
  host?: string;
  restart: boolean;
  force?: boolean;
  reason?: string;
  by?: string;
  json?: boolean;
}

const LEASE_CHECK_MS = 15_000;

/** Null when no canary holds the host; else why not to go on. */
async function leaseHolder(host: string): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new Error(`no answer within ${LEASE_CHECK_MS / 1000} s (is the worker of ${host} running?)`)),
      LEASE_CHECK_MS,
    );
  });
  try {
    const view = await Promise.race([withClient(({ client }) => queryHostState(client, host)), timeout]);
    const lease = view?.lease;
    if (!lease || lease.expiresAt <= Date.now()) return null;
    return `a ${lease.kind} canary holds ${host} (lease ${lease.leaseId}, since ${new Date(lease.grantedAt).toISOString()}): it will restore or promote its own config. Wait for it (healctl status --host ${host}), or pass --force`;
  } catch (err) {
    throw new CliError(
      `healctl rollback: cannot check whether a canary holds ${host}: ${err instanceof Error ? err.message : String(err)}. Pass --force if you are sure none is running`,
    );
  } finally {
    clearTimeout(timer);
  }
}

export function registerRollbackCommand(program: Command): void {
  addHostOption(
    program
      .command('rollback')
      .description(
        'Put back the vLLM config the last promotion replaced, restart the service and wait until it is healthy.',
      ),
  )
    .option('--no-restart', 'only swap the config file; restart the service yourself')
    .option('--force', 'go on even while a canary holds the host (or the lease cannot be checked)')
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
  healctl rollback --force             even while a canary holds the host (not recommended)

A second rollback finds the config already rolled back and changes nothing. The replaced config is
kept as <KLR_BACKUP_DIR>/<config name>.rolled-back.`,
    )
    .action(async (opts: RollbackOptions) => {
      const host = hostFrom(opts, 'rollback');
      const settings = loadSettings();
      const service = loadServiceSettings();
      if (!opts.force) {
        const holder = await leaseHolder(host);
        if (holder !== null) throw new CliError(`healctl rollback: refused: ${holder}`);
      }
      const before = await readIfExists(service.configPath);
      let result;
      try {
        result = await rollbackToPrevious(service.configPath, service.backupDir);
      } catch (err) {
        if (err instanceof ConfigFileError) throw new CliError(`healctl rollback: ${err.message}`);
        throw err;
      }
      const after = await readIfExists(service.configPath);
      const changes =
        before !== null && after !== null
          ? diffConfigKeys(before.toString('utf8'), after.toString('utf8'))
          : null;

      let restart: { downtimeMs: number } | null = null;
      let failure: string | null = null;
      if (opts.restart) {
        const logOffset = service.logPath !== null ? await LogWatcher.sizeOf(service.logPath) : null;
        const started = performance.now();
        // The restart command runs in a process group of its own, which Ctrl-C does not reach: the first
        // SIGINT/SIGTERM stops it (and its children) and is recorded as the failure; a second one kills healctl.
        const interrupted = new AbortController();
        const onSignal = (sig: NodeJS.Signals) =>
          interrupted.abort(new Error(`the restart was interrupted (${sig})`));
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          await runRestartCommand(service.restartCommand, service.restartTimeoutMs, interrupted.signal);
          const health = await waitHealthyWatchingLog({
            baseUrl: service.baseUrl,
            deadlineMs: service.restartTimeoutMs - (performance.now() - started),
            signal: interrupted.signal,
            logPath: service.logPath,
            logOffset,
          });
          if (health.healthy) restart = { downtimeMs: Math.round(performance.now() - started) };
          else
            failure =
              health.why === 'log'
                ? `the service failed to start; its log says: ${shorten(health.logLine ?? '')}`
                : `the service was not healthy within ${service.restartTimeoutMs} ms (last answer: ${health.lastAnswer})`;
        } catch (err) {
          failure =
            err instanceof RestartCommandError
              ? err.message
              : err instanceof Error
                ? err.message
                : String(err);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }

      const record = {
        at: new Date().toISOString(),
        type: 'rollback',
        host,
        by: operatorName(opts.by),
        reason: opts.reason ?? null,
        forced: opts.force ?? false,
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

      if (opts.json) printJson(record);
      else {
        const lines = [
          result.changed
            ? `rolled back ${service.configPath} to ${result.previousPath}${result.rolledBackPath ? ` (the replaced config is kept as ${result.rolledBackPath})` : ''}`
            : `${service.configPath} already is the previous config (${result.previousPath}): nothing written`,
        ];
        if (changes && changes.length > 0) lines.push(formatKeyChanges(changes));
        if (!opts.restart) lines.push('not restarted (--no-restart): restart the service to run this config');
        else if (restart)
          lines.push(`service restarted and healthy after ${(restart.downtimeMs / 1000).toFixed(3)} s`);
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (failure !== null) {
        throw new CliError(
          `healctl rollback: the config was rolled back but ${failure}. Check the service (${service.baseUrl}/health)${result.rolledBackPath ? `; the config it replaced is ${result.rolledBackPath}` : ''}`,
        );
      }
    });
}
