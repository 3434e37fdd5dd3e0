// The service's config file on disk: atomic writes, the per-lease backup, the promotion record and the
// manual rollback. Every step is keyed by the lease and written atomically, so a crash at any point followed
// by a retry (of the canary's restore, or of an operator's rollback) converges on the same files:
//
//   <backupDir>/<basename>.lease-<leaseId>.json   what the canary of that lease set out to do (hashes)
//   <backupDir>/<basename>.before-<leaseId>       the live config as it was before that canary (the backup)
//   <backupDir>/<basename>.previous               the config the last promoted candidate replaced
//   <backupDir>/<basename>.rolled-back            the config the last manual rollback replaced
//
// A write goes to a temp file in the target's own directory, is fsynced, renamed over the target and the
// directory is fsynced; the target keeps its file mode and owner. A config reached through a symlink is
// written where the link points (the link stays).
import { createHash, randomBytes } from 'node:crypto';
import { type Stats, promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncDir } from '../system/durable-file.js';
import { isProcessAlive } from '../system/process-alive.js';

/** A config or backup file that cannot be read or written; `code` is the errno code when there is one. */
export class ConfigFileError extends Error {
  constructor(
    message: string,
    readonly path: string,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ConfigFileError';
  }
}

export const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

const errnoCode = (err: unknown): string | null => (err as NodeJS.ErrnoException | null)?.code ?? null;

function describeErrno(err: unknown): string {
  switch (errnoCode(err)) {
    case 'ENOENT':
      return 'does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EROFS':
      return 'the file system is read-only';
    case 'EISDIR':
      return 'is a directory';
    default:
      return (err as Error).message;
  }
}

/** Where a path really lives: a symlink's target (writes replace the file, never the link). */
async function resolveTarget(path: string): Promise<{ target: string; stat: Stats | null }> {
  try {
    const target = await fs.realpath(path);
    return { target, stat: await fs.stat(target) };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { target: path, stat: null };
    throw new ConfigFileError(`${path}: ${describeErrno(err)}`, path, errnoCode(err));
  }
}

const tempPrefix = (target: string) => `.${basename(target)}.tmp-`;

/** Temp files of earlier writes to this target whose writer died (a crash between open and rename). */
async function sweepStaleTemps(target: string): Promise<void> {
  const dir = dirname(target);
  const prefix = tempPrefix(target);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (Number.isInteger(pid) && pid > 0 && !isProcessAlive(pid)) {
      await fs.rm(join(dir, name), { force: true }).catch(() => undefined);
    }
  }
}

export interface AtomicWriteOptions {
  /**
   * Mode and owner for a file that does not exist yet (e.g. a backup takes its source's). An existing target
   * always keeps its own. Default: mode 0644 less the umask, owned by this process.
   */
  like?: { mode: number; uid: number; gid: number };
}

/**
 * Replace `path` atomically with `data`: temp file in the same directory, write, fsync, rename, fsync the
 * directory. Readers see the old content or the new, never a mix; a crash leaves the old file (and a temp
 * file that the next write sweeps away). Throws {@link ConfigFileError}.
 */
export async function atomicWriteFile(
  path: string,
  data: string | Uint8Array,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const { target, stat } = await resolveTarget(path);
  const keep = stat ? { mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid } : (opts.like ?? null);
  const dir = dirname(target);
  await sweepStaleTemps(target);
  const tmp = join(dir, `${tempPrefix(target)}${process.pid}-${randomBytes(6).toString('hex')}`);
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(tmp, 'wx', keep ? keep.mode & 0o777 : 0o666);
    await handle.writeFile(data);
    if (keep) {
      const own = await handle.stat();
      if (own.uid !== keep.uid || own.gid !== keep.gid) {
        try {
          await handle.chown(keep.uid, keep.gid);
        } catch (err) {
          throw new ConfigFileError(
            `${target}: cannot keep its owner ${keep.uid}:${keep.gid} (this process runs as ${own.uid}:${own.gid}): ${describeErrno(err)}; run the worker as the file's owner or as root`,
            target,
            errnoCode(err),
          );
        }
      }
      // After chown (which clears set-id bits) and regardless of the umask.
      await handle.chmod(keep.mode);
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(tmp, target);
    await fsyncDir(dir);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    if (err instanceof ConfigFileError) throw err;
    throw new ConfigFileError(`cannot write ${target}: ${describeErrno(err)}`, target, errnoCode(err));
  }
}

/** The file's bytes, or null when it does not exist. Throws {@link ConfigFileError} otherwise. */
export async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await fs.readFile(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw new ConfigFileError(`cannot read ${path}: ${describeErrno(err)}`, path, errnoCode(err));
  }
}

async function readRequired(path: string, what: string): Promise<{ data: Buffer; stat: Stats }> {
  try {
    const { target } = await resolveTarget(path);
    const [data, stat] = await Promise.all([fs.readFile(target), fs.stat(target)]);
    return { data, stat };
  } catch (err) {
    if (err instanceof ConfigFileError) throw err;
    throw new ConfigFileError(`${what} ${path} ${describeErrno(err)}`, path, errnoCode(err));
  }
}

async function ensureDir(dir: string): Promise<void> {
  try {
    // Backups may hold secrets (api-key: ...): the directory is private to the worker's user.
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new ConfigFileError(
      `cannot create backup directory ${dir}: ${describeErrno(err)}`,
      dir,
      errnoCode(err),
    );
  }
}

/** A lease id as a file-name part (lease ids are UUIDs; anything else is made safe, never a path). */
function leaseKey(leaseId: string): string {
  const key = leaseId.replace(/[^A-Za-z0-9._-]/g, '_');
  if (key === '' || /^\.+$/.test(key)) throw new RangeError(`lease id ${JSON.stringify(leaseId)} is empty`);
  return key;
}

export const backupPathFor = (configPath: string, backupDir: string, leaseId: string): string =>
  join(backupDir, `${basename(configPath)}.before-${leaseKey(leaseId)}`);

export const previousPathFor = (configPath: string, backupDir: string): string =>
  join(backupDir, `${basename(configPath)}.previous`);

export const rolledBackPathFor = (configPath: string, backupDir: string): string =>
  join(backupDir, `${basename(configPath)}.rolled-back`);

export const leaseRecordPathFor = (configPath: string, backupDir: string, leaseId: string): string =>
  join(backupDir, `${basename(configPath)}.lease-${leaseKey(leaseId)}.json`);

/**
 * Copy the live config to `<backupDir>/<basename>.before-<leaseId>` (atomically, with the config's mode).
 * Idempotent for a lease: an existing backup is kept as it is — by then the live file may already hold the
 * candidate. Returns the backup's path.
 */
export async function backupConfig(configPath: string, backupDir: string, leaseId: string): Promise<string> {
  const backupPath = backupPathFor(configPath, backupDir, leaseId);
  await ensureDir(backupDir);
  if ((await readIfExists(backupPath)) !== null) return backupPath;
  const { data, stat } = await readRequired(configPath, 'vLLM config');
  await atomicWriteFile(backupPath, data, {
    like: { mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid },
  });
  return backupPath;
}

/**
 * Put a backup back over the config. Skips the write when the config already holds the backup's bytes.
 * Throws {@link ConfigFileError} (code ENOENT) when the backup does not exist.
 */
export async function restoreBackup(backupPath: string, configPath: string): Promise<{ changed: boolean }> {
  const backup = await readRequired(backupPath, 'backup');
  const current = await readIfExists(configPath);
  if (current !== null && current.equals(backup.data)) return { changed: false };
  await atomicWriteFile(configPath, backup.data, {
    like: { mode: backup.stat.mode & 0o7777, uid: backup.stat.uid, gid: backup.stat.gid },
  });
  return { changed: true };
}

/**
 * The promotion record: the config a promoted candidate replaced (the lease's backup) becomes
 * `<backupDir>/<basename>.previous`, what {@link rollbackToPrevious} puts back. Idempotent.
 */
export async function recordPromotion(
  configPath: string,
  backupDir: string,
  leaseId: string,
): Promise<string> {
  const previousPath = previousPathFor(configPath, backupDir);
  const backup = await readRequired(backupPathFor(configPath, backupDir, leaseId), 'backup');
  const existing = await readIfExists(previousPath);
  if (existing === null || !existing.equals(backup.data)) {
    await atomicWriteFile(previousPath, backup.data, {
      like: { mode: backup.stat.mode & 0o7777, uid: backup.stat.uid, gid: backup.stat.gid },
    });
  }
  return previousPath;
}

export interface RollbackResult {
  /** The config put back. */
  previousPath: string;
  /** False when the config already was the previous one (nothing written). */
  changed: boolean;
  /** Where the config it replaced was kept; null when nothing changed. */
  rolledBackPath: string | null;
}

/**
 * Manual rollback (`healctl rollback`): put `<basename>.previous` back over the config, keeping the config it
 * replaces as `<basename>.rolled-back`. Idempotent: a second call finds the config equal and writes nothing.
 * The service must then be restarted to run it. Throws {@link ConfigFileError} when no promotion was recorded.
 */
export async function rollbackToPrevious(configPath: string, backupDir: string): Promise<RollbackResult> {
  const previousPath = previousPathFor(configPath, backupDir);
  const previous = await readIfExists(previousPath);
  if (previous === null) {
    throw new ConfigFileError(
      `no previous config recorded at ${previousPath}: no candidate has been promoted for ${configPath}, nothing to roll back to`,
      previousPath,
      'ENOENT',
    );
  }
  const current = await readIfExists(configPath);
  if (current !== null && current.equals(previous)) {
    return { previousPath, changed: false, rolledBackPath: null };
  }
  const rolledBackPath = rolledBackPathFor(configPath, backupDir);
  if (current !== null) {
    const stat = await fs.stat(configPath);
    await atomicWriteFile(rolledBackPath, current, {
      like: { mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid },
    });
  }
  const prevStat = await fs.stat(previousPath);
  await atomicWriteFile(configPath, previous, {
    like: { mode: prevStat.mode & 0o7777, uid: prevStat.uid, gid: prevStat.gid },
  });
  return { previousPath, changed: true, rolledBackPath: current !== null ? rolledBackPath : null };
}

/** What the canary of one lease set out to do: lets a restore without a backup check the config. */
export interface LeaseRecord {
  leaseId: string;
  configPath: string;
  candidateId: string;
  createdAt: string;
  /** sha256 of the config before the canary (the backup's content). */
  originalSha256: string;
  /** sha256 of the candidate config the canary writes. */
  candidateSha256: string;
  /** Set just before the restart command runs: from then on the service may run the candidate. */
  restartRequestedAt?: string;
  /** Set when the canary passed and the candidate was promoted. */
  promotedAt?: string;
  /** Set when a restore of this lease finished with the service healthy. */
  restored?: { at: string; downtimeMs: number; configSha256: string };
}

export async function readLeaseRecord(
  configPath: string,
  backupDir: string,
  leaseId: string,
): Promise<LeaseRecord | null> {
  const path = leaseRecordPathFor(configPath, backupDir, leaseId);
  const data = await readIfExists(path);
  if (data === null) return null;
  try {
    const record = JSON.parse(data.toString('utf8')) as LeaseRecord;
    if (typeof record.originalSha256 !== 'string' || typeof record.candidateSha256 !== 'string') {
      throw new Error('missing hashes');
    }
    return record;
  } catch (err) {
    throw new ConfigFileError(`lease record ${path} is not readable: ${(err as Error).message}`, path);
  }
}

export async function writeLeaseRecord(
  configPath: string,
  backupDir: string,
  record: LeaseRecord,
): Promise<void> {
  await ensureDir(backupDir);
  await atomicWriteFile(
    leaseRecordPathFor(configPath, backupDir, record.leaseId),
    JSON.stringify(record, null, 2) + '\n',
    { like: { mode: 0o600, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 } },
  );
}
