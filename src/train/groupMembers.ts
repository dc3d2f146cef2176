/**
 * Which ranks form a rank's sequence-parallel group and its data-parallel replica group -- the
 * one definition (DESIGN.md): SP groups are contiguous blocks of `sp` ranks, and the data-parallel
 * replicas of a position in its block are that position in every block (world = sp x dp). The
 * layout (ParallelRuntime.ts), the Gloo runtime's subgroups and anything that groups ranks use it.
 * Pure.
 */

export interface GroupMembers {
  /** this rank's SP block, ascending */
  spMembers: number[];
  /** this rank's data-parallel replicas (one per block), ascending */
  dpMembers: number[];
}

/** The groups of `rank` in a world of `world` ranks split into SP blocks of `sp` (ERR_CONFIG unless sp divides world). */
export function groupMembers(rank: number, world: number, sp: number): GroupMembers {
  if (!Number.isInteger(sp) || sp < 1 || !Number.isInteger(world) || world % sp !== 0) {
    throw Object.assign(new Error(`sequence_parallel_size ${sp} must divide the world size ${world}`), { code: 'ERR_CONFIG' as const });
  }
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) {
    throw Object.assign(new Error(`rank ${rank} is not in [0, ${world})`), { code: 'ERR_CONFIG' as const });
  }
  const block = Math.floor(rank / sp);
  const spMembers = Array.from({ length: sp }, (_, i) => block * sp + i);
  const dpMembers = Array.from({ length: world / sp }, (_, k) => (rank % sp) + k * sp);
  return { spMembers, dpMembers };
}
