/**
 * Fault injection for the rank-process harnesses (test/comm, test/sp): an `onLine` handler that,
 * once rank `victim` prints a line ending in "] ready" (it entered its collective loop), sends it
 * `signal` after `delayMs`. `at` is when the signal was sent (0: not yet), `child` the victim.
 */
import type { ChildProcess } from 'node:child_process';

export function signalWhenReady(victim: number, signal: NodeJS.Signals, delayMs: number) {
  const state = {
    at: 0,
    child: undefined as ChildProcess | undefined,
    onLine(rank: number, line: string, child: ChildProcess): void {
      if (rank !== victim || !line.endsWith('] ready') || state.child) return;
      state.child = child;
      setTimeout(() => {
        state.at = Date.now();
        process.kill(child.pid!, signal);
      }, delayMs);
    },
  };
  return state;
}
