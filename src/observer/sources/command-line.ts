// `--command "journalctl -f -u vllm -o cat"` → argv, without a shell. Words are split the way a shell
// splits them (spaces; '…' and "…" quote; \ escapes) but nothing is expanded, and shell operators are
// refused: a pipe or a `;` here would silently become a literal argument of the first program.
import { splitCommandLine } from '../observer-settings.js';

export class CommandLineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandLineError';
  }
}

const OPERATOR = /[|;&<>`$]/;

/** Splits the command line into argv; throws CommandLineError saying what is wrong. */
export function parseCommandLine(text: string): string[] {
  const argv = splitCommandLine(text);
  if (!argv) {
    throw new CommandLineError(
      `cannot split command ${JSON.stringify(text)} into words (unclosed quote, or empty); expected e.g. "journalctl -f -u vllm -o cat"`,
    );
  }
  // Only unquoted operator characters are refused: look at the raw words the user typed.
  for (const raw of rawWords(text)) {
    if (OPERATOR.test(raw)) {
      throw new CommandLineError(
        `the command contains the shell operator ${JSON.stringify(raw)}, but no shell runs it: the words are ` +
          'passed to the program as they are. Observe one program (e.g. "docker logs -f vllm"), or read a ' +
          "pipeline's output from stdin: `... | healctl observe -`",
      );
    }
  }
  return argv;
}

/** The words as typed, quoted parts removed (a quoted "|" is an argument, not an operator). */
function rawWords(text: string): string[] {
  return text
    .replace(/'[^']*'|"(?:\\.|[^"\\])*"/g, 'Q')
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
}
