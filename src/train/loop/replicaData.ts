/**
 * Adapts the data pipeline's items to the loop's `TrainData`: micro-batch `index` of `epoch` for
 * replica `dpRank` holds items perm[(index * batch + b) * dp + dpRank] for b < batch, where perm
 * is the DataLoader's seeded permutation of the epoch. A pure function of (seed, epoch, index),
 * so a resumed run reads exactly what the uninterrupted one read, with no cursor to replay. Every
 * replica gets the same number of micro-batches (an epoch drops the remainder), so the ranks'
 * collectives stay in step. Must never depend on time or process identity beyond (dp, dpRank).
 */
import { DataLoader } from '../data/DataLoader.js';
import type { ItemSource } from '../data/ItemSource.js';
import type { PackedSequence, TrainData } from './sequences.js';

export function replicaData<T = PackedSequence>(items: ItemSource<T>, o: { seed: number; dp: number; dpRank: number; batch: number; shuffle?: boolean }): TrainData<T> {
  const loader = new DataLoader(items, { seed: o.seed, dp: o.dp, dpRank: o.dpRank, shuffle: o.shuffle ?? true });
  const batchesPerEpoch = Math.floor(items.length / (o.dp * o.batch));
  if (batchesPerEpoch < 1) {
    throw Object.assign(new Error(`the dataset yields ${items.length} sequence(s): too few for per_device_train_batch_size ${o.batch} x ${o.dp} data-parallel replica(s)`), { code: 'ERR_DATA' });
  }
  return {
    batchesPerEpoch,
    microBatch(epoch, index) {
      const perm = loader.order(epoch);
      return Array.from({ length: o.batch }, (_, b) => items.at(perm[(index * o.batch + b) * o.dp + o.dpRank]!)!);
    },
  };
}
