/**
 * The environment a rank process starts with: torchrun's names (RANK, LOCAL_RANK, WORLD_SIZE,
 * LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR/PORT, TORCHELASTIC_RESTART_COUNT), so tools that read
 * them work unchanged, and the ULYSSES_* names the rank runtime reads. MASTER_* is the
 * coordinator, whose store serves the rendezvous; ULYSSES_HOST is the rank's host as the hostfile
 * names it (without a user@ prefix), the address its data plane listens on. Pure.
 */
import type { RankSlot } from './RemoteRank.js';

export interface RankEnvironmentOptions {
  world: number;
  /** the restart attempt of the group */
  attempt: number;
  /** the rank's host as the hostfile names it */
  host: string;
  /** the coordinator's address and port, as the ranks dial them */
  masterHost: string;
  masterPort: number;
  workload: string;
  /** extra variables (a fault plan, thread counts); the names above win over them */
  extra?: Record<string, string>;
}

export function rankEnvironment(slot: RankSlot, o: RankEnvironmentOptions): Record<string, string> {
  return {
    ...(o.extra ?? {}),
    RANK: String(slot.rank),
    LOCAL_RANK: String(slot.localRank),
    WORLD_SIZE: String(o.world),
    LOCAL_WORLD_SIZE: String(slot.localRanks),
    GROUP_RANK: String(slot.hostIndex),
    MASTER_ADDR: o.masterHost,
    MASTER_PORT: String(o.masterPort),
    TORCHELASTIC_RESTART_COUNT: String(o.attempt),
    ULYSSES_RESTART_COUNT: String(o.attempt),
    ULYSSES_RANK: String(slot.rank),
    ULYSSES_WORLD: String(o.world),
    ULYSSES_LOCAL_RANK: String(slot.localRank),
    ULYSSES_LOCAL_RANKS: String(slot.localRanks),
    ULYSSES_INCARNATION: String(o.attempt),
    ULYSSES_WORKLOAD: o.workload,
    ULYSSES_HOST: o.host.slice(o.host.lastIndexOf('@') + 1),
  };
}
