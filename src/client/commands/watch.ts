// healctl watch [<kind>]: `healctl status`, refreshed. On a terminal the screen is redrawn every interval;
// elsewhere (a pipe, a log file) a new block is printed only when the state changed; with --json, one
// JSON line per change (the status --json object, or {"host", "error"} while there is nothing to read),
// for scripts and log shippers. Ctrl-C ends it, exit 0.
import { setTimeout as sleep } from 'node:timers/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { withClient } from '../cli/context.js';
import { CliError } from '../cli/errors.js';
import { isInteractive, utcStamp } from '../cli/format.js';
import { addHostOption, addServiceOption, hostFrom, parseKind, parseService } from '../cli/options.js';
import { type StatusSnapshot, formatStatus, readStatus } from './status.js';
import { wantsData } from '../cli/output.js';

const CLEAR_SCREEN = '\x1b[2J\x1b[H';

/** What must differ for a new block on a non-terminal: the state, not the clock. */
export function changeKey(s: StatusSnapshot): string {
  return JSON.stringify(s, (key, value: unknown) =>
    key === 'now' || key === 'cooldownLeftMs' || key === 'text' || key === 'asOf' ? undefined : value,
  );
}

function parseInterval(raw: string): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0.2 || n > 3600) {
    throw new InvalidArgumentError(`expected seconds between 0.2 and 3600, got ${JSON.stringify(raw)}`);
  }
  return n;
}

export function registerWatchCommand(program: Command): void {
  addServiceOption(
    addHostOption(
      program
        .command('watch')
        .description(
          'Live `healctl status`: redraws every --interval on a terminal; elsewhere prints a block on each change.',
        )
        .argument('[kind]', 'one symptom kind (default: every kind on the host)'),
    ),
    'the service on the host, when it runs several (without <kind>: only that service’s workflows)',
  )
    .option('-i, --interval <seconds>', 'seconds between refreshes', parseInterval, 2)
    .option('--decisions <n>', 'how many recent decisions to show', (v) => Number(v), 5)
    .option('--once', 'print one block (or JSON line) and exit')
    .option('--json', 'one JSON line per change (the `status --json` object), for scripts')
    .addHelpText(
      'after',
      `
Examples:
  healctl watch                      every kind on this host
  healctl watch vllm_oom --interval 5
  healctl watch vllm_oom | tee heal.log   prints a timestamped block only when something changed
  healctl watch vllm_oom --json | jq -c '.healing[0].phase'   one JSON object per line, on each change
  healctl watch --service llama-70b  every kind of one service, on a host that runs several

Ctrl-C stops it (exit 0).`,
    )
    .action(
      async (
        kindArg: string | undefined,
        opts: {
          host?: string;
          service?: string;
          interval: number;
          decisions: number;
          once?: boolean;
          json?: boolean;
        },
      ) => {
        const kind = kindArg === undefined ? undefined : parseKind(kindArg, 'watch');
        const host = hostFrom(opts, 'watch');
        const service = parseService(opts.service, 'watch');
        const tty = isInteractive();
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          await withClient(async ({ client }) => {
            let lastKey: string | null = null;
            while (!stop.signal.aborted) {
              let text: string;
              let key: string;
              let line: string;
              try {
                const snapshot = await readStatus(client, 'watch', host, kind, service);
                text = formatStatus(snapshot, Date.now(), opts.decisions);
                key = changeKey(snapshot);
                line = JSON.stringify(snapshot);
              } catch (err) {
                // Not there yet (watching before the first symptom): say so and keep watching.
                if (!(err instanceof CliError)) throw err;
                text = err.message + '\n';
                key = err.message;
                line = JSON.stringify({ host, error: err.message });
              }
              const stamp = utcStamp(Date.now());
              if (wantsData(opts)) {
                if (key !== lastKey) process.stdout.write(line + '\n');
              } else if (tty) {
                process.stdout.write(
                  `${CLEAR_SCREEN}healctl watch — ${stamp}, every ${opts.interval} s, Ctrl-C to stop\n\n${text}`,
                );
              } else if (key !== lastKey) {
                process.stdout.write(`--- ${stamp}\n${text}`);
              }
              lastKey = key;
              if (opts.once) break;
              await sleep(opts.interval * 1000, undefined, { signal: stop.signal }).catch(() => undefined);
            }
          });
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      },
    );
}
