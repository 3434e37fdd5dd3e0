// healctl wait <kind> --for armed|idle|promoted|restored: block until the healing workflow gets there
// (exit 0), a canary ends otherwise (exit 1), or the timeout (exit 1), as `kubectl wait` does.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { parseDurationSeconds } from '../../config/duration.js';
import { withClient } from '../cli/context.js';
import { CliError } from '../cli/errors.js';
import { addHostOption, addServiceOption, hostFrom, parseKind, parseService } from '../cli/options.js';
import { resolveHealingTarget } from '../cli/healing-target.js';
import { WAIT_CONDITIONS, type WaitCondition, checkWait } from '../cli/wait-condition.js';
import { queryHealingState } from '../cli/workflows.js';

const POLL_MS = 2_000;

function parseTimeout(raw: string): number {
  const s = parseDurationSeconds(raw, 's');
  if (s === null || s <= 0 || s > 7 * 86_400) {
    throw new InvalidArgumentError(
      `--timeout: expected a duration such as 90s, 10m or 2h (up to 7d), got ${JSON.stringify(raw)}`,
    );
  }
  return s * 1000;
}

export function registerWaitCommand(program: Command): void {
  addServiceOption(
    addHostOption(
      program
        .command('wait')
        .description('Wait until <kind> is armed, idle, or its next canary is promoted or restored.')
        .argument('<kind>', 'symptom kind, e.g. vllm_oom'),
    ),
  )
    .addOption(
      new Option('--for <condition>', 'what to wait for').choices(WAIT_CONDITIONS).makeOptionMandatory(),
    )
    .option('--timeout <duration>', 'give up after this long (exit 1)', parseTimeout, 30 * 60_000)
    .addHelpText(
      'after',
      `
promoted and restored wait for a canary that ends after the wait begins; one that ends the other way
exits 1 at once. armed and idle are met at once when they already hold. Exit 0 when met, 1 on timeout
or a canary that ended otherwise, 2 on a usage mistake.

Examples:
  healctl escalate vllm_oom --reason "OOMs tonight" && healctl wait vllm_oom --for promoted --timeout 12h
  healctl wait vllm_oom --for idle --timeout 10m && systemctl restart my-proxy
  healctl wait vllm_oom --service llama-70b --for promoted --timeout 12h`,
    )
    .action(
      async (
        kindArg: string,
        opts: { host?: string; service?: string; for: WaitCondition; timeout: number },
      ) => {
        const kind = parseKind(kindArg, 'wait');
        const host = hostFrom(opts, 'wait');
        const service = parseService(opts.service, 'wait');
        const since = Date.now();
        const deadline = since + opts.timeout;
        let who = `${kind} on ${host}`;
        const text = await withClient(async ({ client }) => {
          const t = await resolveHealingTarget(client, { command: 'wait', host, kind, service });
          if (t.idService !== null || service !== undefined) who = `${kind} on ${host}, service ${t.service}`;
          for (;;) {
            const state = await queryHealingState(client, 'wait', host, kind, t.idService);
            const verdict = checkWait(state, opts.for, since);
            if (verdict.done) return verdict.text;
            if (verdict.failed !== null) throw new CliError(`healctl wait: ${verdict.failed}`);
            const left = deadline - Date.now();
            if (left <= 0) {
              throw new CliError(
                `healctl wait: ${who} was not ${opts.for} after ${Math.round(opts.timeout / 1000)} s (${verdict.now})`,
              );
            }
            await new Promise((r) => setTimeout(r, Math.min(POLL_MS, left)));
          }
        });
        process.stdout.write(`${who}: ${text}\n`);
      },
    );
}
