/**
 * Helpers for the multi-process `up` tests: read events.ndjson, collect the pids of every agent
 * and rank the job reported, wait for conditions, and kill leftovers (by pid, never by name)
 * so a failing test still cleans up.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';

export type Ev = Record<string, unknown> & { type: string };

export function readEvents(path: string): Ev[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Ev];
      } catch {
        return []; // a line being written
      }
    });
}

/** pids of agents and ranks from agent.joined / rank.joined */
export function jobPids(events: Ev[]): number[] {
  return events.filter((e) => (e.type === 'agent.joined' || e.type === 'rank.joined') && typeof e.pid === 'number').map((e) => e.pid as number);
}

/** Whether a process with this pid exists at all (a zombie counts: nobody has reaped it yet). */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // a zombie is gone for our purposes (its parent has not reaped it yet)
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | null, timeoutMs: number, everyMs = 50): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Collects a child's output and resolves with its exit code. */
export function collect(child: ChildProcess): { out: () => string; err: () => string; exit: Promise<{ code: number | null; signal: string | null }> } {
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const exit = new Promise<{ code: number | null; signal: string | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { out: () => out, err: () => err, exit };
}

export function killAll(pids: Iterable<number>): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Waits (bounded) until none of the pids is alive; returns those still alive. */
export async function gone(pids: number[], timeoutMs = 3000): Promise<number[]> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (!pids.some(alive)) return [];
    await new Promise((r) => setTimeout(r, 50));
  }
  return pids.filter(alive);
}
