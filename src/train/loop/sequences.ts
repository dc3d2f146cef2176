/**
 * What the training loop reads from the data pipeline, and the cut of one packed sequence into
 * this rank's sequence-parallel shard (REFERENCE §2: pad to a multiple of P with ignored labels,
 * contiguous token blocks, global positions, global document lengths). The loop depends only on
 * these types, so any source of packed sequences (the real pipeline, a test stand-in) plugs in.
 * Must never shift labels (they arrive shifted on the global sequence) or reorder tokens.
 */

import { shardForSequenceParallel } from '../data/shard.js';

/** One packed training sequence, global (before sequence-parallel sharding). */
export interface PackedSequence {
  tokens: Int32Array;
  /** already shifted: labels[t] is the target of position t; -100 is ignored */
  labels: Int32Array;
  /** document lengths summing to tokens.length (default: one document) */
  docLens?: Int32Array;
  /** position ids (default: restarting at 0 in every document) */
  positions?: Int32Array;
}

/** The micro-batches of one data-parallel replica, addressable by (epoch, index) for exact resumes. */
export interface TrainData<T = PackedSequence> {
  /** micro-batches per epoch for one replica */
  batchesPerEpoch: number;
  /** the per_device_train_batch_size items (sequences, or DPO pairs) of micro-batch `index` of `epoch` for this replica */
  microBatch(epoch: number, index: number): T[] | Promise<T[]>;
}

export interface SequenceShard {
  tokens: Int32Array;
  labels: Int32Array;
  /** global positions of this shard's tokens */
  positions: Int32Array;
  /** global document lengths (padding as a negative length), as the SP attention expects */
  docLens: Int32Array;
  /** labels != -100 in this shard */
  valid: number;
  /** padding tokens at the end of this shard */
  padding: number;
  /** global index of this shard's first token */
  offset: number;
}

export const IGNORE_INDEX = -100;

function positionsOf(n: number, docLens: Int32Array): Int32Array {
  const p = new Int32Array(n);
  let t = 0;
  for (const len of docLens) for (let i = 0; i < Math.abs(len) && t < n; i++) p[t++] = i;
  return p;
}

/** This rank's shard of `seq` under sequence parallelism of degree `sp` (sp 1: the whole sequence). */
export function shardSequence(seq: PackedSequence, sp: number, spRank: number, padId = 0): SequenceShard {
  const n = seq.tokens.length;
  if (seq.labels.length !== n) throw new Error(`a packed sequence has ${n} tokens but ${seq.labels.length} labels`);
  const docLens = seq.docLens ?? Int32Array.of(n);
  const docSum = docLens.reduce((a, x) => a + Math.abs(x), 0);
  if (docSum !== n) throw new Error(`a packed sequence of ${n} tokens has document lengths summing to ${docSum}`);
  const shard = shardForSequenceParallel({ tokens: seq.tokens, labels: seq.labels, docLens, positions: seq.positions ?? positionsOf(n, docLens) }, sp, spRank, padId);
  let valid = 0;
  for (const l of shard.labels) if (l !== IGNORE_INDEX) valid++;
  const len = shard.tokens.length;
  const padding = Math.max(0, Math.min(len, shard.offset + len - n));
  return { tokens: shard.tokens, labels: shard.labels, positions: shard.positions, docLens: shard.docLens, valid, padding, offset: shard.offset };
}
