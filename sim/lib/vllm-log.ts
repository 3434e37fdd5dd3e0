// vLLM's log format: "INFO 11-28 03:00:01 [loader.py:458] message", each line of a multi-line message
// carrying the header, and since vLLM 0.10 a "(APIServer pid=N) " / "(EngineCore_0 pid=N) " prefix
// naming the process that printed it. Uvicorn's own lines ("INFO:     Started server process [N]") and
// Python tracebacks are printed as they are, with the process prefix.

export type Level = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';
export type Proc = 'api' | 'engine' | 'none';

export interface VllmLogOptions {
  pid: number;
  /** Print the "(APIServer pid=N) " prefixes (vLLM ≥ 0.10); false prints bare lines like vLLM ≤ 0.9. */
  prefixed: boolean;
  now?: () => Date;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** vLLM's datefmt "%m-%d %H:%M:%S" (local time). */
export function vllmTimestamp(d: Date): string {
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export class VllmLog {
  private readonly now: () => Date;
  private readonly out: (text: string) => void;
  private readonly err: (text: string) => void;

  constructor(private readonly opts: VllmLogOptions) {
    this.now = opts.now ?? (() => new Date());
    this.out = opts.stdout ?? ((t) => void process.stdout.write(t));
    this.err = opts.stderr ?? ((t) => void process.stderr.write(t));
  }

  prefix(proc: Proc): string {
    if (!this.opts.prefixed || proc === 'none') return '';
    return proc === 'api' ? `(APIServer pid=${this.opts.pid}) ` : `(EngineCore_0 pid=${this.opts.pid}) `;
  }

  /** A logger record: every line of the message gets the full header. */
  log(proc: Proc, level: Level, source: string, message: string): void {
    const head = `${this.prefix(proc)}${level} ${vllmTimestamp(this.now())} [${source}] `;
    this.out(
      message
        .split('\n')
        .map((line) => head + line)
        .join('\n') + '\n',
    );
  }

  api(level: Level, source: string, message: string): void {
    this.log('api', level, source, message);
  }

  engine(level: Level, source: string, message: string): void {
    this.log('engine', level, source, message);
  }

  /** Lines printed without a logger header (Uvicorn, tracebacks, progress bars), prefixed by process. */
  raw(proc: Proc, lines: string | string[], stream: 'stdout' | 'stderr' = 'stdout'): void {
    const list = typeof lines === 'string' ? [lines] : lines;
    const text = list.map((l) => this.prefix(proc) + l).join('\n') + '\n';
    (stream === 'stdout' ? this.out : this.err)(text);
  }

  /** Uvicorn's "INFO:     ..." lines. */
  uvicorn(message: string, level: 'INFO' | 'ERROR' | 'WARNING' = 'INFO'): void {
    this.raw('api', `${`${level}:`.padEnd(10)}${message}`);
  }
}
