/**
 * A rank as the coordinator's supervisor sees it: a process on some node agent that fails
 * through several channels (its agent's exit report, its own failure report, missed heartbeats).
 * Also the rank slots of a job (ranks in hostfile order, host 0's slots first) and the waiters
 * for agents' exit confirmations. Holds no sockets: stopping goes through the coordinator.
 */
import type { ChildHandle, ExitInfo } from '../Supervisor.js';

export interface HostSlot {
  host: string;
  slots: number;
}

export interface RankSlot {
  rank: number;
  hostIndex: number;
  localRank: number;
  localRanks: number;
}

/** Every rank of the job, in hostfile order. */
export function rankSlotsOf(hosts: readonly HostSlot[]): RankSlot[] {
  const slots: RankSlot[] = [];
  hosts.forEach((h, hostIndex) => {
    for (let l = 0; l < h.slots; l++) slots.push({ rank: slots.length, hostIndex, localRank: l, localRanks: h.slots });
  });
  return slots;
}

export class RemoteRank implements ChildHandle {
  readonly exited: Promise<ExitInfo>;
  private settle!: (e: ExitInfo) => void;
  private settled = false;
  pid: number | null = null;
  /** set when the rank reported a communication error: its failure is probably a consequence of another's */
  secondaryAt: number | null = null;
  /** set when its agent reported the process's exit: nothing is left to stop or wait for */
  exitReported = false;
  /** set on its first final report (rank.done or rank.failed): a resent one is only acknowledged */
  finalReported = false;

  constructor(
    readonly slot: RankSlot,
    readonly incarnation: number,
    /** the coordinator's shutdown ladder for a remote rank */
    private readonly stopper: (r: RemoteRank, reason: string) => Promise<void>,
  ) {
    this.exited = new Promise((r) => (this.settle = r));
  }

  get peer(): string {
    return `rank:${this.slot.rank}`;
  }

  get agentPeer(): string {
    return `agent:${this.slot.hostIndex}`;
  }

  fail(exit: ExitInfo): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(exit);
  }

  get isSettled(): boolean {
    return this.settled;
  }

  async stop(reason: string): Promise<void> {
    if (this.settled && !this.pid) return;
    await this.stopper(this, reason);
  }
}

/** Waiters for the agents' reports that a rank's process exited, by rank and incarnation. */
export class RankExits {
  private waiters = new Map<string, () => void>();

  wait(rank: number, incarnation: number): Promise<void> {
    return new Promise((resolve) => this.waiters.set(`${rank}/${incarnation}`, resolve));
  }

  confirm(rank: number, incarnation: number): void {
    const key = `${rank}/${incarnation}`;
    this.waiters.get(key)?.();
    this.waiters.delete(key);
  }
}
