// Per-user cache for the servers the project builds itself (Temporal CLI, Java test server).
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$KLR_CACHE_DIR`, else `${XDG_CACHE_HOME:-$HOME/.cache}/kloros-healing`. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KLR_CACHE_DIR) return env.KLR_CACHE_DIR;
  const xdg = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(xdg, 'kloros-healing');
}
