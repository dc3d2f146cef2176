/**
 * Whether a process with this pid may still be alive on this host: it exists, or exists but
 * belongs to another user (EPERM). For deciding whether a name that carries its owner's pid is
 * stale; never signals anything (signal 0 only checks).
 */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
