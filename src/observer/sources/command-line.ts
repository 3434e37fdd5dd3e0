// `--command "journalctl -f -u vllm -o cat"` → argv, without a shell. Words are split the way a shell
// splits them (spaces; '…' and "…" quote; \ escapes) but nothing is expanded, and shell operators are
// refused: a pipe or a `;` here would silently become a literal argument of the first program.
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

/**
 * A command line split into arguments the way a shell would split words — spaces separate, '…' and "…"
 * quote, \ escapes — but nothing is expanded and no shell runs it. A JSON array is taken as is.
 */
export function splitCommandLine(text: string): string[] | null {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    try {
      const value = JSON.parse(trimmed) as unknown;
      if (!Array.isArray(value) || value.length === 0) return null;
      return value.every((v): v is string => typeof v === 'string') ? value : null;
    } catch {
      return null;
    }
  }
  const args: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < trimmed.length; i++) {
    const c = trimmed[i] as string;
    if (quote === "'") {
      if (c === "'") quote = null;
      else current += c;
    } else if (c === '\\' && i + 1 < trimmed.length) {
      current += trimmed[++i];
      inWord = true;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) args.push(current);
      current = '';
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quote !== null) return null;
  if (inWord) args.push(current);
  return args.length > 0 ? args : null;
}
