// Whether this machine has nvidia-smi (KLR_NVIDIA_SMI, else the PATH): `npm start` runs the real stack
// where it does and the simulated demo where it does not.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

type Env = Record<string, string | undefined>;

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The nvidia-smi the worker would run, or null when there is none. A KLR_NVIDIA_SMI that names a
 * missing file is an error, not a reason for the demo: someone asked for that one.
 */
export async function findNvidiaSmi(env: Env = process.env): Promise<string | null> {
  const configured = env.KLR_NVIDIA_SMI?.trim();
  if (configured) {
    const path = isAbsolute(configured) || configured.includes('/') ? resolve(configured) : null;
    if (path) {
      if (await isExecutable(path)) return path;
      throw new Error(
        `KLR_NVIDIA_SMI=${JSON.stringify(configured)} is not an executable file: fix the path, or unset it ` +
          'to look for nvidia-smi on PATH (none found runs the demo)',
      );
    }
    return searchPath(configured, env.PATH);
  }
  return searchPath('nvidia-smi', env.PATH);
}

async function searchPath(name: string, pathVar: string | undefined): Promise<string | null> {
  for (const dir of (pathVar ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return null;
}
