// healctl vram: what the worker would measure on this host, through the same nvidia-smi parser.
import type { Command } from 'commander';
import type { VramSnapshot } from '../../activities/types.js';
import { NvidiaSmiError } from '../../gpu/nvidia-smi.js';
import { CliError } from '../cli/errors.js';
import { printData, wantsData } from '../cli/output.js';
import { parseService } from '../cli/options.js';
import { loadServices } from '../../service/services-file.js';
import { type ServiceVramFinding, serviceVram, serviceVramFindingText } from '../../domain/service-vram.js';

/** What --service restricts to: the named service's GPUs (null: every GPU); an unknown name is an error. */
function serviceGpus(service: string): readonly (number | string)[] | null {
  const services = loadServices();
  const spec = services.find((s) => s.name === service);
  if (!spec) {
    const all = services.map((s) => s.name).join(', ');
    throw new CliError(
      services.length === 0
        ? `healctl vram: --service ${service}: no services are configured here (KLR_SERVICES_FILE, or KLR_SERVICE_CONFIG)`
        : `healctl vram: unknown service "${service}": this host runs ${all} (--service one of: ${all})`,
    );
  }
  return spec.gpus;
}

/** Findings about the service's GPU list itself (a GPU the host lacks, an ambiguous UUID prefix). */
const GPU_LIST_FINDINGS: readonly ServiceVramFinding['code'][] = [
  'gpu_not_present',
  'gpu_ref_ambiguous',
  'mig_device_unplaced',
];

export function registerVramCommand(program: Command): void {
  program
    .command('vram')
    .description('Measure the GPUs as the worker would (nvidia-smi, or KLR_NVIDIA_SMI).')
    .option(
      '--service <name>',
      'only the GPUs of this service of KLR_SERVICES_FILE, and the processes on them',
    )
    .option('--json', 'print the measurement as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  healctl vram\n  healctl vram --json | jq .gpus[0].freeMb\n  healctl vram --service llama-70b\n  KLR_NVIDIA_SMI=/opt/nvidia/bin/nvidia-smi healctl vram',
    )
    .action(async (opts: { json?: boolean; service?: string }) => {
      const service = parseService(opts.service, 'vram');
      const gpus = service === undefined ? undefined : serviceGpus(service);
      let snapshot: VramSnapshot;
      try {
        // Loaded here, like every process runner (execa): the other commands need none.
        const { measureVramOnce } = await import('../../activities/measure-vram.js');
        snapshot = await measureVramOnce();
      } catch (err) {
        if (err instanceof NvidiaSmiError) throw new CliError(`healctl vram: ${err.message}`);
        throw err;
      }
      if (gpus !== undefined) {
        const view = serviceVram(snapshot, { gpus, isOwn: () => true });
        snapshot = view.snapshot;
        for (const f of view.findings.filter((f) => GPU_LIST_FINDINGS.includes(f.code)))
          process.stderr.write(`healctl vram: service ${service}: ${serviceVramFindingText(f)}\n`);
      }
      if (wantsData(opts)) printData(snapshot);
      else process.stdout.write(formatVram(snapshot));
    });
}

function mib(v: number | null): string {
  return v === null ? 'n/a' : `${v.toLocaleString('en-US')} MiB`;
}

export function formatVram(s: VramSnapshot): string {
  const lines = [`measured at ${s.measuredAt}`];
  for (const g of s.gpus) {
    lines.push(
      `GPU ${g.index}  ${g.name ?? 'unknown'}  ${g.uuid ?? ''}`.trimEnd(),
      `  total ${mib(g.totalMb)}  used ${mib(g.usedMb)}  free ${mib(g.freeMb)}  utilization ${g.utilizationPct === null ? 'n/a' : `${g.utilizationPct} %`}`,
    );
  }
  if (s.processes.length === 0) lines.push('no compute processes');
  for (const p of s.processes)
    lines.push(`  pid ${p.pid}  ${p.processName ?? 'unknown'}  ${mib(p.usedMb)}  on ${p.gpuUuid ?? '?'}`);
  return lines.join('\n') + '\n';
}
