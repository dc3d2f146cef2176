/**
 * The harness's check that a job left nothing behind: whether a pid is still a live process (a
 * zombie is not), waiting a bounded time for a set of pids to go, and killing what is left, by
 * pid, after resuming it in case it was stopped. Only ever signals the pids it is given: those
 * the job reported as its own.
 */
import { readFileSync } from 'node:fs';

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch (e) {
    // EPERM: it exists but is not ours to signal; anything else (ESRCH, no /proc entry): gone
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pids still alive after waiting up to waitMs for all of them to go. */
export async function leftoverPids(pids: number[], waitMs: number): Promise<number[]> {
  const t0 = Date.now();
  while (Date.now() - t0 < waitMs) {
    if (!pids.some(alive)) return [];
    await new Promise((r) => setTimeout(r, 50));
  }
  return pids.filter(alive);
}

export function killLeftovers(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGCONT');
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
}
