/**
 * Serves items (sequences or DPO pairs) to the training loop in a deterministic order that is a
 * pure function of (seed, epoch): each epoch is a fresh permutation of all items. The position
 * is a `DataCursor` {epoch, index}, saved in checkpoints; restoring it continues exactly where
 * the run stopped. With data parallelism every replica keeps the same cursor and takes its own
 * item of each group of `dp`; an epoch holds floor(n / dp) groups so every replica sees the
 * same number of micro-batches (ranks that disagree on counts deadlock). It must never depend on
 * wall-clock time, Math.random or process identity beyond (dpRank, dp).
 */
import { epochPermutation } from './rng.js';
import { DataError } from './DataError.js';
import type { ItemSource } from './ItemSource.js';

function identity(n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return p;
}

export interface DataCursor {
  epoch: number;
  /** Items of this epoch already consumed by all replicas together (a multiple of dp). */
  index: number;
}

export interface DataLoaderOptions {
  seed: number;
  /** Data-parallel degree and this replica's index (SP ranks of one replica share the data). */
  dp?: number;
  dpRank?: number;
  /** false keeps the dataset order (evaluation). */
  shuffle?: boolean;
}

export class DataLoader<T> {
  readonly items: ItemSource<T>;
  readonly seed: number;
  readonly dp: number;
  readonly dpRank: number;
  private readonly shuffle: boolean;
  private epochNow = -1;
  private perm: Int32Array = new Int32Array(0);
  private cur: DataCursor = { epoch: 0, index: 0 };

  constructor(items: ItemSource<T>, opts: DataLoaderOptions) {
    this.items = items;
    this.seed = opts.seed;
    this.dp = opts.dp ?? 1;
    this.dpRank = opts.dpRank ?? 0;
    this.shuffle = opts.shuffle ?? true;
    if (!Number.isInteger(this.dp) || this.dp < 1 || this.dpRank < 0 || this.dpRank >= this.dp) {
      throw new RangeError(`bad data-parallel layout dp=${this.dp} dpRank=${this.dpRank}`);
    }
    if (Math.floor(items.length / this.dp) === 0) {
      throw new DataError(`the dataset yields ${items.length} sequence(s), fewer than the ${this.dp} data-parallel replicas`);
    }
  }

  /** Micro-batches per epoch for this replica (the same on every replica). */
  get stepsPerEpoch(): number {
    return Math.floor(this.items.length / this.dp);
  }

  get cursor(): DataCursor {
    return { ...this.cur };
  }

  /** Continues from a saved cursor (validated, so a foreign checkpoint fails loudly). */
  restore(c: DataCursor): void {
    const okEpoch = Number.isInteger(c?.epoch) && c.epoch >= 0;
    const okIndex = Number.isInteger(c?.index) && c.index >= 0 && c.index % this.dp === 0 && c.index <= this.stepsPerEpoch * this.dp;
    if (!okEpoch || !okIndex) throw new DataError(`invalid data cursor ${JSON.stringify(c)} for ${this.items.length} items and dp=${this.dp}`);
    this.cur = { epoch: c.epoch, index: c.index };
  }

  /** The permutation of an epoch (exposed for tests and for tools). */
  order(epoch: number): Int32Array {
    if (epoch !== this.epochNow) {
      this.perm = this.shuffle ? epochPermutation(this.items.length, this.seed, epoch) : identity(this.items.length);
      this.epochNow = epoch;
    }
    return this.perm;
  }

  /** This replica's next item; the cursor moves past the whole group of dp items. */
  next(): { item: T; epoch: number; index: number } {
    if (this.cur.index + this.dp > this.stepsPerEpoch * this.dp) this.cur = { epoch: this.cur.epoch + 1, index: 0 };
    const { epoch, index } = this.cur;
    const item = this.items.at(this.order(epoch)[index + this.dpRank]!)!;
    this.cur = { epoch, index: index + this.dp };
    return { item, epoch, index: index + this.dpRank };
  }
}
