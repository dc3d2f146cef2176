/**
 * The sharding group of ZeRO (REFERENCE §8: the whole world, SP x DP ranks) as the optimizer
 * needs it: its stage, this rank's place, and the two world collectives the sharded state moves
 * through. Must never issue a collective on a smaller group: every rank of the world calls these
 * at the same point of a step.
 */
import type { ParallelRuntime } from '../ParallelRuntime.js';

export interface ZeroGroup {
  /** 0: replicated state; 1: moments partitioned; 2: gradients too */
  stage: number;
  rank: number;
  world: number;
  /** data-parallel replicas: stage 2 divides the world sum by it (MEAN over replicas, REFERENCE §2) */
  dp: number;
  /** every rank's `part` concatenated in rank order (a collective: every rank calls it); into `out` when given */
  allGather(part: Float32Array, out?: Float32Array): Promise<Float32Array>;
  /** rank r gets the sum of chunk r of every rank's `full`, in a fixed order (a collective); into `out` when given */
  reduceScatterSum(full: Float32Array, out?: Float32Array): Promise<Float32Array>;
}

/** The ZeRO group of `rt` (the world) at `stage`. */
export function zeroGroupOf(rt: ParallelRuntime, stage: number): ZeroGroup {
  return {
    stage,
    rank: rt.rank,
    world: rt.world,
    dp: rt.dp,
    allGather: (x, out) => rt.allGather(x, 'world', out),
    // summed over each SP block first, then over the replicas: the order of the runtime's reduceGradients
    reduceScatterSum: (x, out) => rt.reduceScatterSum(x, 'world', rt.sp, out),
  };
}
