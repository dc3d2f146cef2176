/**
 * Warm standby rank processes, one per rank of this host: a process started ahead of need that has
 * already booted Node.js and loaded the rank runtime and the workloads' code (the native engine
 * included), and waits on its stdin for the environment of the rank it is to become. When the
 * coordinator restarts the group the agent hands each rank's assignment to its standby instead of
 * starting a process from nothing, which takes the process start-up out of the recovery time.
 * A standby is started `delayMs` after its rank (so it does not compete with that rank's own
 * start-up for the cores), holds no job state, and exits by itself when its stdin closes (the
 * agent is gone). Never assigns a process that has exited; the caller then starts one afresh.
 */
import type { ProcessChild } from './ProcessChild.js';

/** What a standby reads from stdin: one JSON line with the rank's environment and arguments. */
export interface StandbyAssignment {
  env: Record<string, string>;
  args: string[];
}

export class StandbyRanks {
  private readonly spares = new Map<number, ProcessChild>();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private closed = false;

  /** `start(rank)`: a standby process (a ProcessChild with a lifeline stdin) for that rank */
  constructor(
    private readonly start: (rank: number) => ProcessChild,
    private readonly delayMs: number,
  ) {}

  /**
   * The standby of `rank`, already told its assignment, or null when there is none alive (the
   * caller starts a process). Either way a new standby for the rank is prepared.
   */
  assign(rank: number, a: StandbyAssignment): ProcessChild | null {
    const spare = this.spares.get(rank);
    this.spares.delete(rank);
    const taken = spare && spare.send(JSON.stringify(a) + '\n') ? spare : null;
    if (spare && !taken) void spare.stop('standby not usable');
    this.prepare(rank);
    return taken;
  }

  /** Starts a standby for `rank` after the delay (unless one is alive or pending). */
  private prepare(rank: number): void {
    if (this.closed || this.timers.has(rank) || this.spares.get(rank)?.alive) return;
    const timer = setTimeout(() => {
      this.timers.delete(rank);
      if (this.closed) return;
      const child = this.start(rank);
      this.spares.set(rank, child);
      void child.exited.then(() => {
        if (this.spares.get(rank) === child) this.spares.delete(rank);
      });
    }, this.delayMs);
    timer.unref();
    this.timers.set(rank, timer);
  }

  /** Stops every standby and starts no more. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    const spares = [...this.spares.values()];
    this.spares.clear();
    await Promise.all(spares.map((c) => c.stop('job finished', true)));
  }
}
