// A process that appends numbered records to a spool as fast as it can and prints each number once its
// append has resolved, so a test can SIGKILL it mid-append and check that every acknowledged record is
// still there after recovery. Usage: spool-writer.ts DIR [segmentBytes]
import { Spool } from '../../src/observer/spool.js';

const [dir, segmentBytes] = process.argv.slice(2);
if (!dir) throw new Error('usage: spool-writer.ts DIR [segmentBytes]');
const spool = await Spool.open<{ n: number; pad: string }>({
  dir,
  maxBytes: 1024 ** 3,
  segmentBytes: segmentBytes ? Number(segmentBytes) : undefined,
  log: { warn: () => undefined, error: () => undefined },
});
const pad = 'x'.repeat(300); // long enough that a kill often lands inside a write
for (let n = 1; ; n++) {
  await spool.append({ n, pad });
  process.stdout.write(`${n}\n`);
}
