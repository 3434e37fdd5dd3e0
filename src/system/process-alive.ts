// Whether a process exists, by its pid: kill(pid, 0) sends nothing and says whether it could. EPERM means
// it exists but belongs to someone else. A zombie counts as alive (see restart-command.ts for groups).

export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
