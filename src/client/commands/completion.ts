// healctl completion bash|zsh|fish: a completion script made from the commands and options healctl has,
// so it cannot drift from them. Install: `healctl completion bash > /etc/bash_completion.d/healctl`,
// or `source <(healctl completion bash)`; zsh loads the bash one through bashcompinit.
import { type Command, InvalidArgumentError } from 'commander';

const SHELLS = ['bash', 'zsh', 'fish'] as const;
type Shell = (typeof SHELLS)[number];

interface Completable {
  name: string;
  description: string;
  options: string[];
}

function completables(program: Command): { commands: Completable[]; global: string[] } {
  const longNames = (cmd: Command) =>
    cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => typeof f === 'string'));
  return {
    global: [...longNames(program), '--help'],
    commands: program.commands.map((c) => ({
      name: c.name(),
      description: c.description().split('\n')[0]!.replace(/\.$/, ''),
      options: [...longNames(c), '--help'],
    })),
  };
}

const shellWord = (s: string) => s.replace(/[^A-Za-z0-9_.:/=-]/g, '');

export function completionScript(program: Command, shell: Shell): string {
  const { commands, global } = completables(program);
  if (shell === 'fish') {
    const lines = [
      '# healctl completion for fish: healctl completion fish > ~/.config/fish/completions/healctl.fish',
    ];
    lines.push('complete -c healctl -f');
    for (const c of commands) {
      const description = c.description.replace(/'/g, '');
      lines.push(
        `complete -c healctl -n '__fish_use_subcommand' -a ${shellWord(c.name)} -d '${description}'`,
      );
      for (const o of c.options.filter((o) => o.startsWith('--')))
        lines.push(
          `complete -c healctl -n '__fish_seen_subcommand_from ${shellWord(c.name)}' -l ${shellWord(o.slice(2))}`,
        );
    }
    for (const o of global.filter((o) => o.startsWith('--')))
      lines.push(`complete -c healctl -l ${shellWord(o.slice(2))}`);
    return lines.join('\n') + '\n';
  }
  const cases = commands
    .map((c) => `    ${shellWord(c.name)}) opts="${c.options.map(shellWord).join(' ')}" ;;`)
    .join('\n');
  const bash = `_healctl() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  local global="${global.map(shellWord).join(' ')}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${commands.map((c) => shellWord(c.name)).join(' ')} $global" -- "$cur") )
    return
  fi
  local opts=""
  case "\${COMP_WORDS[1]}" in
${cases}
  esac
  COMPREPLY=( $(compgen -W "$opts $global" -- "$cur") )
}
complete -F _healctl healctl
`;
  return shell === 'zsh'
    ? `# healctl completion for zsh (through bashcompinit): source <(healctl completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n${bash}`
    : `# healctl completion for bash: source <(healctl completion bash)\n${bash}`;
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('Print a shell completion script for healctl (bash, zsh or fish).')
    .argument('<shell>', 'bash, zsh or fish', (v: string) => {
      if (!(SHELLS as readonly string[]).includes(v))
        throw new InvalidArgumentError(`expected one of ${SHELLS.join(', ')}, got ${JSON.stringify(v)}`);
      return v as Shell;
    })
    .addHelpText(
      'after',
      `
Examples:
  source <(healctl completion bash)                                 this shell only
  healctl completion bash | sudo tee /etc/bash_completion.d/healctl  every new bash
  healctl completion fish > ~/.config/fish/completions/healctl.fish`,
    )
    .action((shell: Shell) => {
      process.stdout.write(completionScript(program, shell));
    });
}
