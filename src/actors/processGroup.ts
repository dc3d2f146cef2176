/**
 * Small process helpers shared by the children we supervise (local processes, ssh sessions):
 * signal a child's whole process group, wait for an exit with a bound, the signal end of the
 * shutdown ladder, and taking the group down when the supervisor exits.
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

/**
 * The signal end of a shutdown ladder for a child that leads its own process group: SIGTERM,
 * wait graceMs, SIGKILL, wait killWaitMs. True when it exited on the way (`isExited` says whether
 * its exit was already seen, so a reused pid is never signalled).
 */
export async function terminateGroup(pid: number | undefined, exited: Promise<unknown>, isExited: () => boolean, graceMs: number, killWaitMs: number): Promise<boolean> {
  const waitExit = (ms: number) => (isExited() ? Promise.resolve(true) : exitedWithin(exited, ms));
  if (!isExited()) signalGroup(pid, 'SIGTERM');
  if (await waitExit(graceMs)) return true;
  if (!isExited()) signalGroup(pid, 'SIGKILL');
  return waitExit(killWaitMs);
}

/** SIGKILLs the child's process group when this process exits first (the child dies with its supervisor). */
export function killGroupOnExit(pid: number | undefined, exited: Promise<unknown>, isExited: () => boolean): void {
  const onParentExit = () => {
    if (!isExited()) signalGroup(pid, 'SIGKILL');
  };
  process.once('exit', onParentExit);
  void exited.then(() => process.removeListener('exit', onParentExit));
}
