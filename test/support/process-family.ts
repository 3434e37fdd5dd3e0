// Real processes with chosen command lines, for the tests that read /proc: a parent and its child, or an
// orphan whose parent has exited. Each lives two minutes at most; stopFamilies() kills them sooner.
import { spawn } from 'node:child_process';
import { once } from 'node:events';

const started: Array<{ kill(signal: NodeJS.Signals): unknown }> = [];

/** Kills every process these helpers started (call it from `after`). */
export function stopFamilies(): void {
  for (const c of started.splice(0)) {
    try {
      c.kill('SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** A `node` whose argv ends in `args`, started by a parent whose argv ends in `parentArgs`; both pids. */
export async function family(
  parentArgs: string[],
  args: string[],
): Promise<{ parent: number; child: number }> {
  const script = `
    const c = require('node:child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)', ...${JSON.stringify(args)}], { stdio: 'ignore' });
    process.stdout.write(String(c.pid) + '\\n');
    process.on('SIGTERM', () => { c.kill('SIGKILL'); process.exit(0); });
    setTimeout(() => {}, 120000);`;
  const parent = spawn(process.execPath, ['-e', script, ...parentArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.push(parent);
  const [chunk] = (await once(parent.stdout, 'data')) as [Buffer];
  const child = Number(chunk.toString().trim());
  started.push({ kill: (signal) => process.kill(child, signal) });
  return { parent: parent.pid!, child };
}

/** A `node` whose argv ends in `args`, whose parent has exited (it is re-parented to init or a subreaper). */
export async function orphan(args: string[]): Promise<number> {
  const script = `
    const c = require('node:child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)', ...${JSON.stringify(args)}], { stdio: 'ignore', detached: true });
    c.unref();
    process.stdout.write(String(c.pid) + '\\n');`;
  const launcher = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  launcher.stdout.on('data', (b: Buffer) => (out += b.toString()));
  await once(launcher, 'exit');
  const pid = Number(out.trim());
  started.push({ kill: (signal) => process.kill(pid, signal) });
  return pid;
}
