// -o/--output on every command, as kubectl and the Temporal CLI have it: table (long text cut to a
// column), wide (nothing cut), json, yaml. `--json` stays as the alias of `-o json`. Streams (observe,
// watch) print one JSON object per line for json and yaml alike.
import { type Command, Option } from 'commander';
import { stringify as toYaml } from 'yaml';

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';
const FORMATS: readonly OutputFormat[] = ['table', 'wide', 'json', 'yaml'];

/** How wide a table cell may be before `-o table` cuts it (`-o wide` does not). */
export const TABLE_CELL_MAX = 80;

let selected: OutputFormat = 'table';

export function addOutputOption(program: Command): void {
  program.addOption(
    new Option('-o, --output <format>', 'table (long text cut), wide, json or yaml')
      .choices(FORMATS)
      .default('table'),
  );
  program.hook('preAction', () => {
    selected = program.opts<{ output: OutputFormat }>().output;
  });
}

/** Whether the command prints its data (json or yaml) rather than text for people. */
export function wantsData(opts: { json?: boolean }): boolean {
  return opts.json === true || selected === 'json' || selected === 'yaml';
}

/** The command's data, as YAML for `-o yaml`, else as JSON. */
export function printData(value: unknown): void {
  process.stdout.write(selected === 'yaml' ? toYaml(value) : JSON.stringify(value, null, 2) + '\n');
}

/** The widest a table cell may be: cut for `-o table`, whole for `-o wide`. */
export function cellLimit(): number {
  return selected === 'wide' ? Infinity : TABLE_CELL_MAX;
}
