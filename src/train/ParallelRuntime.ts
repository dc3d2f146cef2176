/**
 * The contract between the training loop and the data plane: group sizes and ranks, the
 * collectives the trainer needs, gradient reduction (REFERENCE §2: SUM over the SP group, MEAN over
 * data-parallel replicas) and installing Ulysses attention into a model when sp > 1.
 * `singleProcessRuntime` is the world-of-one implementation (no communication); the Gloo-backed
 * one lives in src/train/createParallelRuntime.ts.
 */
import type { Communicator } from '../engine/Communicator.js';
import type { Model } from '../engine/model/index.js';
import { groupMembers } from './groupMembers.js';

export interface ParallelLayout {
  rank: number;
  world: number;
  /** sequence-parallel degree P (contiguous rank blocks) */
  sp: number;
  /** data-parallel degree: world / sp */
  dp: number;
  /** position inside the SP block: rank % sp */
  spRank: number;
  /** index of the SP block (the replica): floor(rank / sp) */
  dpRank: number;
}

export type Group = 'sp' | 'dp' | 'world';

export interface ParallelRuntime extends ParallelLayout {
  /** In-place sum across a group; the same bits on every member. */
  allReduceSum(buf: Float32Array | Float64Array, group: Group): Promise<void>;
  /** Root's buffer to every member of the group (root is a group-local index). */
  broadcast(buf: Float32Array | Float64Array | Int32Array | Uint8Array, group: Group, root?: number): Promise<void>;
  barrier(group: Group): Promise<void>;
  /** Every member's buffer (same length everywhere) concatenated in group rank order (into `out` when given). */
  allGather(buf: Float32Array, group: Group, out?: Float32Array): Promise<Float32Array>;
  /**
   * Member i gets the sum over members of chunk i of every member's `buf` (buf.length / group size
   * elements each), added in group rank order within blocks of `block` members (default 1), then
   * over the blocks: ZeRO stage 2's gradient reduction, with block sp on the world (the SP sum,
   * then the replicas', as reduceGradients adds them). Into `out` when given.
   */
  reduceScatterSum(buf: Float32Array, group: Group, block?: number, out?: Float32Array): Promise<Float32Array>;
  /** Gradients of replicated parameters: SUM over the SP group, then MEAN over the DP replicas. */
  reduceGradients(grads: Float32Array): Promise<void>;
  /** Makes the model's attention sequence-parallel over the SP group (no-op when sp == 1). */
  attachModel(model: Model): void;
  /**
   * A communicator over the whole world for a model's own collectives (ZeRO stage 3's gathers
   * and reduce-scatters inside forward and backward), apart from the runtime's. Each sharded
   * model takes two (its collectives, its gathers' worker thread): the trained model 0 and 1, a
   * sharded frozen reference 2 and 3. Each is made on its first call (a collective: every rank
   * calls it at the same point), closed with the runtime. null in a world of one.
   */
  modelWorld(index?: number): Promise<Communicator | null>;
  close(): Promise<void>;
}

/** `rank`'s place in its groups (groupMembers.ts). */
export function layoutOf(rank: number, world: number, sp: number): ParallelLayout {
  const g = groupMembers(rank, world, sp);
  return { rank, world, sp, dp: world / sp, spRank: g.spMembers.indexOf(rank), dpRank: g.dpMembers.indexOf(rank) };
}

/** A world of one process: every collective is the identity. */
export function singleProcessRuntime(): ParallelRuntime {
  return {
    ...layoutOf(0, 1, 1),
    allReduceSum: async () => {},
    broadcast: async () => {},
    barrier: async () => {},
    allGather: async (buf, _group, out) => (out ? (out.set(buf), out) : Float32Array.from(buf)),
    reduceScatterSum: async (buf, _group, _block, out) => (out ? (out.set(buf), out) : Float32Array.from(buf)),
    reduceGradients: async () => {},
    attachModel: () => {},
    modelWorld: async () => null,
    close: async () => {},
  };
}
