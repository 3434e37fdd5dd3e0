// healctl observe: run the observer's detector over a file, a command's output or stdin, and print each
// incident — how an operator checks the detector against their own logs. With --dry-run nothing is sent
// (no Temporal connection at all); otherwise symptoms go through the observer's delivery (and its spool).
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { isValidKind, kindProblem } from '../../domain/identifiers.js';
import { loadSettings } from '../../config/settings.js';
import { createLogger } from '../../config/logger.js';
import { observe, type ObserveSummary } from '../../observer/pipeline.js';
import { CommandLineError, parseCommandLine } from '../../observer/sources/command-line.js';
import { FileMissingError, FileSource } from '../../observer/sources/file-source.js';
import type { LineSource } from '../../observer/sources/line-source.js';
import type * as CommandSourceModule from '../../observer/sources/command-source.js';
import { StdinSource } from '../../observer/sources/stdin-source.js';
import type { Incident, SymptomSink } from '../../observer/types.js';
import type { SymptomInput } from '../../domain/symptom.js';
import { CliError, UsageError } from '../cli/errors.js';
import { resolveHost } from '../cli/context.js';
import { parseService } from '../cli/options.js';
import { configuredServices } from '../cli/healing-target.js';
import { routeService } from '../../service/services-file.js';
import { wantsData } from '../cli/output.js';

interface ObserveOpts {
  file?: string;
  command?: string;
  fromStart?: boolean;
  once?: boolean;
  dryRun?: boolean;
  json?: boolean;
  host?: string;
  service?: string;
  stateDir?: string;
  collapseWindow?: string;
  kind?: string;
}

export function registerObserveCommand(program: Command): void {
  program
    .command('observe')
    .description(
      'Detect GPU memory incidents (and Xid faults) in a service log and send them as symptoms; ' +
        'with --dry-run only print them.',
    )
    .argument('[stdin]', '"-" to read the log from stdin')
    .option(
      '--file <path>',
      'follow a log file like tail -F (rotation, truncation, position kept across restarts)',
    )
    .option(
      '--command <command line>',
      'follow a command\'s output, e.g. "journalctl -f -u vllm -o cat" (no shell)',
    )
    .option('--from-start', 'read a file from its start when there is no saved position (default: its end)')
    .option(
      '--once',
      'stop at the end of the input instead of following (a file is then read from its start)',
    )
    .option('--dry-run', 'send nothing (no Temporal connection); just print what is detected')
    .option('--json', 'one JSON object per incident per line')
    .option('--host <name>', 'the GPU host the symptoms are about (default KLR_HOST, then this machine)')
    .option(
      '--service <name>',
      'the service whose log this is, on a host that runs several (default: the legacy one, or the only one)',
    )
    .option(
      '--state-dir <dir>',
      'where file positions (and the spool) are kept (default $KLR_DATA_DIR/observer)',
    )
    .option('--collapse-window <ms>', 'repeats within this many ms of log time are one incident', '5000')
    .option(
      '--kind <kind>',
      "the kind of this log's memory failures, e.g. sglang_oom for an SGLang log (default: vllm_oom, or the server a message names)",
    )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  healctl observe --file /var/log/vllm.log --once --dry-run --json',
        '  healctl observe --file /var/log/vllm.log                 # follow and send symptoms',
        '  healctl observe --command "journalctl -f -u vllm -o short-iso"',
        '  healctl observe --command "docker logs -f --timestamps vllm" --dry-run',
        '  journalctl -k -o short-iso | healctl observe - --dry-run',
        '  healctl observe --command "journalctl -f -u vllm@llama-70b -o cat" --service llama-70b',
        '',
        'Sources: exactly one of --file, --command or "-" (stdin). --command is split into words without a',
        'shell: pipes, redirections and $VARS are refused; pipe into "healctl observe -" instead.',
        'A dry run keeps no file position unless --state-dir is given.',
        '--service: routed by KLR_SERVICES_FILE when it describes this host; otherwise the symptoms go to',
        'kloros-healing/<host>/<service>/<kind> as they are.',
      ].join('\n'),
    )
    .action(async (stdinArg: string | undefined, opts: ObserveOpts) => {
      await runObserve(stdinArg, opts);
    });
}

/**
 * The workflow-id service the symptoms go to: routed by the services this environment describes for `host`
 * (an unknown name is an error naming them), else --service as it is; null: the legacy ids (as before) or,
 * with a services file, where it routes an unlabelled symptom.
 */
function observeService(host: string, service: string | undefined): string | null {
  const configured = configuredServices(host);
  if (configured === null) return service ?? null;
  const routed = routeService(configured, service ?? null);
  if (!routed.ok) throw new CliError(`healctl observe: ${routed.error}`);
  return routed.service;
}

async function runObserve(stdinArg: string | undefined, opts: ObserveOpts): Promise<void> {
  if (stdinArg !== undefined && stdinArg !== '-') {
    throw new UsageError(
      `healctl observe: unexpected argument ${JSON.stringify(stdinArg)}; expected "-" for stdin, or --file PATH, or --command "..."`,
    );
  }
  const chosen = [opts.file !== undefined, opts.command !== undefined, stdinArg === '-'].filter(
    Boolean,
  ).length;
  if (chosen !== 1) {
    throw new UsageError(
      `healctl observe: expected exactly one source: --file PATH, --command "..." or - (stdin); got ${chosen === 0 ? 'none' : 'several'}`,
    );
  }
  const collapseWindowMs = Number(opts.collapseWindow);
  if (!/^\d+$/.test(opts.collapseWindow ?? '') || collapseWindowMs > 3_600_000) {
    throw new UsageError(
      `healctl observe: --collapse-window ${JSON.stringify(opts.collapseWindow)} is not valid; expected whole milliseconds, 0 to 3600000`,
    );
  }
  if (opts.kind !== undefined && !isValidKind(opts.kind)) {
    throw new UsageError(`healctl observe: --kind ${JSON.stringify(opts.kind)}: ${kindProblem(opts.kind)}`);
  }
  if (opts.fromStart && opts.file === undefined) {
    throw new UsageError('healctl observe: --from-start applies to --file only');
  }
  const host = resolveHost(opts.host);
  const idService = observeService(host, parseService(opts.service, 'observe'));
  const explicitState = opts.stateDir !== undefined;
  const stateDir = explicitState
    ? resolve(opts.stateDir as string)
    : join(loadSettings().dataDir, 'observer');

  let source: LineSource;
  let commandSource: typeof CommandSourceModule | undefined;
  if (opts.file !== undefined) {
    source = new FileSource({
      path: resolve(opts.file),
      ...(opts.dryRun && !explicitState ? {} : { stateDir }),
      fromStart: Boolean(opts.fromStart || opts.once),
      once: Boolean(opts.once),
    });
  } else if (opts.command !== undefined) {
    let argv: string[];
    try {
      argv = parseCommandLine(opts.command);
    } catch (err) {
      if (err instanceof CommandLineError) throw new UsageError(`healctl observe: --command: ${err.message}`);
      throw err;
    }
    // Loaded here, like every process runner (execa): the other sources and commands need none.
    commandSource = await import('../../observer/sources/command-source.js');
    source = new commandSource.CommandSource({
      argv,
      once: Boolean(opts.once),
      onExit: ({ exitCode, error, restartInMs }) =>
        process.stderr.write(
          `healctl observe: ${argv[0]} ${error ?? `exited with code ${exitCode}`}; restarting in ${restartInMs} ms\n`,
        ),
    });
  } else {
    source = new StdinSource();
  }

  let sink: SymptomSink | undefined;
  if (!opts.dryRun) {
    const { createSymptomDelivery } = await import('../../observer/delivery.js');
    const delivery = await createSymptomDelivery({
      host,
      spoolDir: join(stateDir, 'spool'),
      log: createLogger('healctl-observe', process.env.KLR_LOG_LEVEL ?? 'warn', 2),
    });
    sink =
      idService === null
        ? delivery
        : {
            deliver: async (symptom) => {
              await delivery.submit(symptom, host, idService);
            },
            close: () => delivery.close(),
          };
  }

  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let summary: ObserveSummary;
  try {
    summary = await observe({
      source,
      host,
      ...(sink ? { sink } : {}),
      signal: controller.signal,
      collapseWindowMs,
      ...(opts.kind !== undefined ? { memoryKind: opts.kind } : {}),
      onIncident: (incident, symptom) =>
        process.stdout.write(
          wantsData(opts) ? formatJson(incident, symptom) : formatHuman(incident, symptom),
        ),
    });
  } catch (err) {
    if (err instanceof FileMissingError) throw new CliError(`healctl observe: ${err.message}`);
    if (commandSource && err instanceof commandSource.CommandFailedError)
      throw new CliError(`healctl observe: --command: ${err.message}`);
    throw err;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await sink?.close();
  }
  process.stderr.write(formatSummary(summary, source.description, Boolean(opts.dryRun)));
}

export function formatJson(incident: Incident, symptom: SymptomInput & { id: string }): string {
  return (
    JSON.stringify({
      kind: incident.kind,
      family: incident.family,
      line: incident.line,
      sizesMib: incident.sizesMib,
      ...(incident.gpu !== undefined ? { gpu: incident.gpu } : {}),
      ...(incident.estimatedMaxModelLen !== undefined
        ? { estimatedMaxModelLen: incident.estimatedMaxModelLen }
        : {}),
      ...(incident.xid !== undefined ? { xid: incident.xid } : {}),
      ...(incident.cause !== undefined ? { cause: incident.cause } : {}),
      text: symptom.details?.text ?? '',
      id: symptom.id,
      at: incident.at,
    }) + '\n'
  );
}

const mib = (v: number) => `${v.toLocaleString('en-US', { maximumFractionDigits: 2 })} MiB`;

export function formatHuman(incident: Incident, symptom: SymptomInput & { id: string }): string {
  const s = incident.sizesMib;
  const parts = [
    `line ${incident.line}`,
    `${incident.kind}/${incident.family}`,
    ...(incident.cause ? [`cause ${incident.cause}`] : []),
    ...(incident.xid !== undefined ? [`Xid ${incident.xid}`] : []),
    ...(incident.gpu !== undefined ? [`GPU ${incident.gpu}`] : []),
    ...(s.alloc !== undefined ? [`alloc ${mib(s.alloc)}`] : []),
    ...(s.free !== undefined ? [`free ${mib(s.free)}`] : []),
    ...(s.total !== undefined ? [`total ${mib(s.total)}`] : []),
    ...(s.deficit !== undefined ? [`deficit ${mib(s.deficit)}`] : []),
    ...(incident.estimatedMaxModelLen !== undefined ? [`est. max len ${incident.estimatedMaxModelLen}`] : []),
  ];
  const text = symptom.details?.text ?? '';
  return `${parts.join('  ')}\n    ${text.length > 160 ? `${text.slice(0, 157)}...` : text}\n`;
}

function size(bytes: number): string {
  if (bytes < 1024 * 1024)
    return `${(bytes / 1024).toLocaleString('en-US', { maximumFractionDigits: 1 })} KiB`;
  return mib(bytes / (1024 * 1024));
}

export function formatSummary(summary: ObserveSummary, what: string, dryRun: boolean): string {
  const families = Object.entries(summary.byFamily)
    .map(([f, n]) => `${f} ${n}`)
    .join(', ');
  return (
    `healctl observe: ${what}: ${summary.lines} lines, ${size(summary.bytes)}; ` +
    `${summary.incidents} incident${summary.incidents === 1 ? '' : 's'}${families ? ` (${families})` : ''}` +
    `${dryRun ? ', dry run: nothing sent' : ''}\n`
  );
}
