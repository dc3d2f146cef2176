/**
 * The reference's log-prob sums of every sequence of a set of preference or KTO items, scored
 * under the job's layout exactly as the step's reference pass scores them: each replica takes
 * every dp-th item, each SP member forwards its shard of every sequence (forwardLogps, no
 * dropout), one SP all-reduce per chunk completes the partial sums, and one world all-reduce
 * gathers the replicas' items (each item written by one SP rank 0, zeros elsewhere: exact).
 * Under ZeRO 3 a replica one item short forwards one item more, discarded, so every rank makes
 * the same number of forwards (each gathers over the world): the shares are replicaBatches'.
 * Must never touch gradients, and must issue the same collectives on every member of a group.
 */
import type { ParallelRuntime } from '../ParallelRuntime.js';
import type { ItemSource } from '../data/ItemSource.js';
import { forwardLogps, type ReferenceModel } from '../loop/dpo.js';
import { replicaBatches } from '../loop/evaluate.js';
import { shardSequence, type PackedSequence } from '../loop/sequences.js';

/** Items per SP all-reduce while scoring. */
const CHUNK_ITEMS = 16;

/** One set to score: its items and the two sequences of each (dpo chosen, rejected; kto target, KL). */
export interface ScoredSet<T> {
  items: ItemSource<T>;
  sequences(item: T): readonly [PackedSequence, PackedSequence];
}

/**
 * Scores every item of `sets` into out[at + 2i], out[at + 2i + 1] (at: 2 x the items of the sets
 * before), then completes `out` over the world. `out` must start zeroed.
 */
export async function scoreReference(reference: ReferenceModel, runtime: ParallelRuntime, sets: readonly ScoredSet<unknown>[], out: Float64Array): Promise<void> {
  let at = 0;
  for (const set of sets) {
    // this replica's item indexes in chunks (under ZeRO 3 with item 0 once more, not counted, when the share is short)
    const indexes = Array.from({ length: set.items.length }, (_, i) => i);
    for (const { items: chunk, counted } of replicaBatches(indexes, runtime, CHUNK_ITEMS, reference.model)) {
      const shards = chunk.flatMap((i) => set.sequences(set.items.at(i)!).map((s) => shardSequence(s, runtime.sp, runtime.spRank)));
      const partial = new Float64Array(shards.length);
      reference.enter?.();
      try {
        await forwardLogps(reference.model, shards, partial, 0);
      } finally {
        reference.exit?.();
      }
      await runtime.allReduceSum(partial, 'sp');
      if (runtime.spRank === 0) for (let k = 0; k < counted; k++) out.set(partial.subarray(2 * k, 2 * k + 2), at + 2 * chunk[k]!);
    }
    at += 2 * set.items.length;
  }
  await runtime.allReduceSum(out, 'world');
}
