/**
 * Nothing left behind: the temporary names a job makes carry their owner's pid (the job key
 * directory `ulysses-job-<pid>-*` and an agent's key copy `ulysses-agent-<pid>-*` in the temp
 * directory, the shared-memory segments `ua-comm-p<pid>-*` and `ua-win-p<pid>-*` the native
 * communicator makes while ranks connect), so the next start of any job on the host (the
 * coordinator, every node agent) removes those whose owner is dead: left by a SIGKILL, a crash or
 * a power cut. An entry whose owner lives (or may live: a pid of another user) is never touched.
 * Also lists the entries of given pids, for the harness's and the tests' leftover checks.
 */
import { readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive } from '../util/pidAlive.js';

/** Where the owned names live and how their owner's pid is read from them. */
const OWNED: readonly { dir: () => string; pattern: RegExp }[] = [
  { dir: tmpdir, pattern: /^ulysses-(?:job|agent)-(\d+)-/ },
  { dir: () => '/dev/shm', pattern: /^ua-(?:comm|win)-p(\d+)-/ },
];

/** Every owned entry on this host with its owner's pid. */
export function ownedEntries(): { path: string; pid: number }[] {
  const out: { path: string; pid: number }[] = [];
  for (const { dir, pattern } of OWNED) {
    let names: string[];
    try {
      names = readdirSync(dir());
    } catch {
      continue;
    }
    for (const n of names) {
      const m = pattern.exec(n);
      if (m) out.push({ path: join(dir(), n), pid: Number(m[1]) });
    }
  }
  return out;
}

/** Removes the entries whose owner is dead; returns what it removed. Never throws. */
export function sweepDeadOwners(): string[] {
  const removed: string[] = [];
  for (const e of ownedEntries()) {
    if (pidAlive(e.pid)) continue;
    try {
      rmSync(e.path, { recursive: true, force: true });
      removed.push(e.path);
    } catch {
      /* another user's, or gone meanwhile */
    }
  }
  return removed;
}

/** The entries owned by any of these pids (a finished job's processes must own none). */
export function entriesOwnedBy(pids: Iterable<number>): string[] {
  const set = new Set(pids);
  return ownedEntries()
    .filter((e) => set.has(e.pid))
    .map((e) => e.path);
}
