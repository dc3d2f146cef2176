/**
 * Small process helpers shared by the children we supervise (local processes, ssh sessions):
 * signal a child's whole process group, and wait for an exit with a bound.
 * They only ever signal pids this process started.
 */

/** Sends `sig` to the process group led by `pid` (falls back to the pid alone); never throws. */
export function signalGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  }
}

/** true when `exited` settles within ms, false on timeout. */
export function exitedWithin(exited: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    void exited.then(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
