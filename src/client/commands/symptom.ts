// healctl symptom <kind>: record one symptom (update-with-start) and print what the workflow answered.
import type { Command } from 'commander';
import { recordSymptom } from '../../temporal/symptoms.js';
import { parseSymptom, type SymptomInput } from '../../domain/symptom.js';
import type { RecordSymptomResult } from '../../workflows/healing-messages.js';
import { UsageError } from '../cli/errors.js';
import { withClient } from '../cli/context.js';
import { timeWithRelative } from '../cli/format.js';
import { addHostOption, addServiceOption, hostFrom, parseKind, parseService } from '../cli/options.js';
import { resolveHealingTarget } from '../cli/healing-target.js';
import { rejected } from '../cli/workflows.js';
import { printData, wantsData } from '../cli/output.js';

interface SymptomOptions {
  host?: string;
  service?: string;
  id?: string;
  source: string;
  eventTime?: string;
  detail: string[];
  details?: string;
  allocMb?: string;
  deficitMb?: string;
  freeMb?: string;
  text?: string;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `key=value`: a number when it reads as one, else the text. */
function parseDetail(pair: string): [string, string | number] {
  const eq = pair.indexOf('=');
  if (eq <= 0) {
    throw new UsageError(
      `healctl symptom: bad --detail ${JSON.stringify(pair)}: expected key=value, e.g. --detail allocMb=512 or --detail family=torch_oom`,
    );
  }
  const key = pair.slice(0, eq);
  const raw = pair.slice(eq + 1);
  const num = Number(raw);
  return [key, raw.trim() !== '' && Number.isFinite(num) ? num : raw];
}

function mbOption(name: string, raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) {
    throw new UsageError(
      `healctl symptom: bad --${name} ${JSON.stringify(raw)}: expected a number of MiB, e.g. --${name} 512`,
    );
  }
  return n;
}

export function buildSymptom(kind: string, opts: SymptomOptions): SymptomInput {
  let details: Record<string, unknown> = {};
  if (opts.details !== undefined) {
    try {
      details = JSON.parse(opts.details) as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(
        `healctl symptom: --details is not JSON (${(err as Error).message}): expected e.g. '{"allocMb":512}'`,
      );
    }
    if (typeof details !== 'object' || details === null || Array.isArray(details)) {
      throw new UsageError(`healctl symptom: --details must be a JSON object, e.g. '{"allocMb":512}'`);
    }
  }
  for (const pair of opts.detail) {
    const [k, v] = parseDetail(pair);
    details[k] = v;
  }
  if (opts.allocMb !== undefined) details.allocMb = mbOption('alloc-mb', opts.allocMb);
  if (opts.deficitMb !== undefined) details.deficitMb = mbOption('deficit-mb', opts.deficitMb);
  if (opts.freeMb !== undefined) details.freeMb = mbOption('free-mb', opts.freeMb);
  if (opts.text !== undefined) details.text = opts.text;
  const eventTime =
    opts.eventTime !== undefined && /^\d+$/.test(opts.eventTime) ? Number(opts.eventTime) : opts.eventTime;
  const payload = {
    kind,
    source: opts.source,
    ...(opts.id !== undefined ? { id: opts.id } : {}),
    ...(eventTime !== undefined ? { eventTime } : {}),
    ...(Object.keys(details).length > 0 ? { details } : {}),
  };
  // The same schema the workflow's validator uses: a mistake in the arguments is a usage error here.
  const parsed = parseSymptom(payload);
  if (!parsed.ok) throw new UsageError(`healctl symptom: ${parsed.error}`);
  return payload;
}

export function formatSymptomResult(
  kind: string,
  host: string,
  r: RecordSymptomResult,
  now: number,
  service: string | null = null,
): string {
  const flag = !r.armed
    ? 'not armed'
    : r.flagExpiresAt === null
      ? 'ARMED (does not lapse)'
      : `ARMED, lapses ${timeWithRelative(r.flagExpiresAt, now)}`;
  return (
    [
      `${kind} on ${host}${service === null ? '' : `, service ${service}`}: symptom ${r.outcome}`,
      `  symptoms 24 h  ${r.count24h} of threshold ${r.threshold}`,
      `  escalation     ${flag}`,
      `  mode           ${r.mode}`,
    ].join('\n') + '\n'
  );
}

export function registerSymptomCommand(program: Command): void {
  addServiceOption(
    addHostOption(
      program
        .command('symptom')
        .description(
          'Record one symptom for <kind> on the host; prints the 24 h count, the flag and the mode.',
        )
        .argument('<kind>', 'symptom kind, e.g. vllm_oom'),
    ),
    'the service it is about, when the host runs several (default: the legacy one, or the only one)',
  )
    .option('--id <id>', 'idempotency id: the same id twice counts once')
    .option('--source <name>', 'who reports it', 'healctl')
    .option('--event-time <time>', 'when it happened: ISO 8601 with zone, or epoch ms (default: now)')
    .option(
      '--detail <key=value>',
      'a detail field, repeatable (allocMb, deficitMb, freeMb, totalMb, family, gpu, text, …)',
      collect,
      [],
    )
    .option('--details <json>', 'all details as one JSON object')
    .option('--alloc-mb <MiB>', 'MiB the failed allocation asked for')
    .option('--deficit-mb <MiB>', 'MiB the allocation was short of')
    .option('--free-mb <MiB>', 'MiB free on the GPU at the failure')
    .option('--text <text>', 'free text, e.g. the log line')
    .option('--json', 'print the workflow’s answer as JSON')
    .addHelpText(
      'after',
      `
Examples:
  healctl symptom vllm_oom
  healctl symptom vllm_oom --host gpu-node-1 --alloc-mb 512 --detail family=torch_oom
  healctl symptom vllm_oom --id alert-42 --event-time 2026-11-28T03:04:05Z --json
  healctl symptom vllm_oom --service llama-70b --deficit-mb 512

Exit codes: 0 counted (or a duplicate/stale one, said so), 1 the workflow rejected it or Temporal is
unreachable, 2 bad arguments.`,
    )
    .action(async (kindArg: string, opts: SymptomOptions) => {
      const kind = parseKind(kindArg, 'symptom');
      const host = hostFrom(opts, 'symptom');
      const service = parseService(opts.service, 'symptom');
      const symptom = buildSymptom(kind, opts);
      const { result, target } = await withClient(async ({ client }) => {
        const target = await resolveHealingTarget(client, {
          command: 'symptom',
          host,
          kind,
          service,
          create: true,
        });
        try {
          return { result: await recordSymptom(client, host, symptom, target.idService), target };
        } catch (err) {
          return rejected('symptom', err);
        }
      });
      const shown = target.idService ?? (service === undefined ? null : target.service);
      if (wantsData(opts)) printData({ host, service: target.service, kind, ...result });
      else process.stdout.write(formatSymptomResult(kind, host, result, Date.now(), shown));
    });
}
