// Files that must survive a crash whole: written to a temp file beside the target, fsynced, renamed over the
// target, and the directory fsynced, so a reader (or the next start) sees the old content or the new, never
// a mix and never nothing. The service's config file has its own writer on top of this (config-file.ts:
// it keeps the file's owner and mode and sweeps temp files of dead writers).
import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Errors of file systems that cannot fsync a directory: the rename itself still happened. */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'EISDIR', 'EPERM', 'EACCES', 'ENOTSUP']);

/** fsync a directory, so that a rename or a new file in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    if (!DIR_SYNC_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await handle?.close();
  }
}

/** Replace `path` with `data` durably (temp, fsync, rename, fsync of the directory); creates the directory. */
export async function writeFileDurably(
  path: string,
  data: string | Uint8Array,
  opts: { mode?: number } = {},
): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  const handle = await open(temp, 'w', opts.mode ?? 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  await rename(temp, path);
  await fsyncDir(dir);
}
