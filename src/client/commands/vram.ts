// healctl vram: what the worker would measure on this host, through the same nvidia-smi parser.
import type { Command } from 'commander';
import { measureVramOnce } from '../../activities/measure-vram.js';
import type { VramSnapshot } from '../../activities/types.js';
import { NvidiaSmiError } from '../../gpu/nvidia-smi.js';
import { CliError } from '../cli/errors.js';
import { printData, wantsData } from '../cli/output.js';

export function registerVramCommand(program: Command): void {
  program
    .command('vram')
    .description('Measure the GPUs as the worker would (nvidia-smi, or KLR_NVIDIA_SMI).')
    .option('--json', 'print the measurement as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  healctl vram\n  healctl vram --json | jq .gpus[0].freeMb\n  KLR_NVIDIA_SMI=/opt/nvidia/bin/nvidia-smi healctl vram',
    )
    .action(async (opts: { json?: boolean }) => {
      let snapshot: VramSnapshot;
      try {
        snapshot = await measureVramOnce();
      } catch (err) {
        if (err instanceof NvidiaSmiError) throw new CliError(`healctl vram: ${err.message}`);
        throw err;
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
