/**
 * ZeRO stage 3's parameter sharding of a model (REFERENCE §8): the partition map of the optimizer
 * state (partition.ts, the cut checkpoints record) applied to the parameters and gradients too,
 * over the runtime's model communicator (the world), so the model keeps only this rank's part and
 * gathers each layer inside its forward and backward; with `overlap` (the default) the gathers run
 * on a worker thread over a second communicator, each overlapping the compute before it (no more
 * memory resident: see native/src/model/llama.h). Every rank calls it at the same point,
 * after the weights are loaded and before the trainer is made; `frozen` for the frozen reference of
 * full-FT dpo/kto, which is sharded the same way. Must never cut the parameters
 * otherwise than the optimizer cuts its moments.
 */
import type { Model, ParameterShards } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { Partition } from './partition.js';

export async function shardModel(model: Model, rt: ParallelRuntime, o: { overlap?: boolean; frozen?: boolean } = {}): Promise<ParameterShards> {
  const partition = new Partition(model.views, rt.world);
  // a frozen reference (full-FT dpo/kto) runs its forwards over communicators of its own
  const first = o.frozen ? 2 : 0;
  const world = await rt.modelWorld(first);
  const gathers = (o.overlap ?? true) ? await rt.modelWorld(first + 1) : null;
  // summed over each SP block first, then over the replicas: the order of stage 2's reduce-scatter
  return model.shardParameters(world, { rank: rt.rank, world: rt.world, dp: rt.dp, block: rt.sp, chunks: partition.describe().chunks }, gathers);
}
