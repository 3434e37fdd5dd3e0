// The file follower's saved position: one small JSON file per followed path, replaced atomically
// (temp file, fsync, rename, fsync of the directory) so a crash leaves the old or the new position.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileDurably } from '../../system/durable-file.js';

export const positionSchema = z.object({
  path: z.string(),
  dev: z.number(),
  ino: z.number(),
  /** Bumped each time the file was truncated in place, so offsets after a truncation get new ids. */
  generation: z.number().int().min(0),
  offset: z.number().int().min(0),
  /** Line number of the line that starts at `offset`. */
  nextLine: z.number().int().min(1),
  /**
   * The last bytes before `offset` (base64): a file truncated and written again past `offset` while the
   * observer was down has other bytes there. Absent in positions saved by older releases.
   */
  tail: z.string().max(256).optional(),
});
export type SavedPosition = z.infer<typeof positionSchema>;

/**
 * `position-<hash of path>.json`, or `position-<name>-<hash of path>.json` for a log followed for a named
 * service (KLR_SERVICES_FILE): two services never share a position, even when one's log moves to the other's.
 */
export function positionFile(stateDir: string, path: string, name: string | null = null): string {
  const key = createHash('sha256').update(path).digest('hex').slice(0, 16);
  if (name !== null && !/^[a-z0-9-]{1,63}$/.test(name))
    throw new Error(`position state name ${JSON.stringify(name)}: expected a service name`);
  return join(stateDir, name === null ? `position-${key}.json` : `position-${name}-${key}.json`);
}

/** The saved position, or null when there is none; a corrupt file is an error naming it. */
export async function loadPosition(file: string): Promise<SavedPosition | null> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const parsed = positionSchema.safeParse(safeJson(text));
  if (!parsed.success) {
    throw new Error(`position state ${file} is not valid (delete it to start over from the file's end)`);
  }
  return parsed.data;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export async function savePosition(file: string, position: SavedPosition): Promise<void> {
  await writeFileDurably(file, JSON.stringify(position) + '\n');
}
