/**
 * Ulysses sharding of one sequence (REFERENCE §2): pad to a multiple of P (pad token, label
 * -100, marked as a negative document length), rank r takes tokens [r*s/P, (r+1)*s/P) with its
 * slice of the global position ids and of the already-shifted labels; docLens stay global. It
 * must never shift labels (that happened on the global sequence) or drop a supervised token.
 */
import type { Sequence } from './sequences.js';
import { IGNORE_INDEX } from './templates.js';

export interface Shard extends Sequence {
  /** Global document lengths (shared by every rank; negative = padding), summing to globalLen. */
  docLens: Int32Array;
  /** Padded global length (a multiple of sp). */
  globalLen: number;
  /** Index of this shard's first token in the padded global sequence. */
  offset: number;
}

/** Pads a sequence to a multiple of `multiple` (label -100, pad token, a negative doc length). */
export function padSequence(seq: Sequence, multiple: number, padId: number): Sequence {
  const s = seq.tokens.length;
  const total = Math.ceil(s / multiple) * multiple;
  if (total === s) return seq;
  const pad = total - s;
  const tokens = new Int32Array(total).fill(padId);
  tokens.set(seq.tokens);
  const labels = new Int32Array(total).fill(IGNORE_INDEX);
  labels.set(seq.labels);
  const positions = new Int32Array(total);
  positions.set(seq.positions);
  for (let i = 0; i < pad; i++) positions[s + i] = i;
  const docLens = new Int32Array(seq.docLens.length + 1);
  docLens.set(seq.docLens);
  docLens[seq.docLens.length] = -pad;
  return { tokens, labels, positions, docLens };
}

export function shardForSequenceParallel(seq: Sequence, sp: number, rank: number, padId = 0): Shard {
  if (!Number.isInteger(sp) || sp < 1) throw new RangeError(`sequence_parallel_size must be a positive integer, got ${sp}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= sp) throw new RangeError(`rank ${rank} is outside the SP group of ${sp}`);
  const padded = padSequence(seq, sp, padId);
  const globalLen = padded.tokens.length;
  const chunk = globalLen / sp;
  const a = rank * chunk;
  const b = a + chunk;
  return {
    tokens: padded.tokens.slice(a, b),
    labels: padded.labels.slice(a, b),
    positions: padded.positions.slice(a, b),
    docLens: padded.docLens,
    globalLen,
    offset: a,
  };
}

type Countable = { labels: Int32Array } | { chosen: { labels: Int32Array }; rejected: { labels: Int32Array } };

/** Supervised tokens (labels != -100) of a sequence, shard, DPO pair, or a list of them. */
export function validTokenCount(batch: Countable | readonly Countable[]): number {
  if (Array.isArray(batch)) return (batch as Countable[]).reduce((n, b) => n + validTokenCount(b), 0);
  const one = batch as Countable;
  if ('chosen' in one) return validTokenCount(one.chosen as Countable) + validTokenCount(one.rejected as Countable);
  let n = 0;
  for (const l of one.labels) if (l !== IGNORE_INDEX) n++;
  return n;
}
