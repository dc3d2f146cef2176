/**
 * The step benchmarks' sequence (`bench step`, `bench step --sp`, `bench memory`): s pseudo-random
 * tokens from a fixed LCG, labels shifted by one, one document (or packed documents of a given
 * length, positions restarting in each); and this rank's
 * shard of it under sequence parallelism. Deterministic: every rank builds the same sequence.
 */
import { shardForSequenceParallel } from '../src/train/data/shard.js';

export function benchSequenceShard(s: number, vocab: number, sp: number, spRank: number, docTokens = 0) {
  let x = 12345;
  const tokens = Int32Array.from({ length: s }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x % vocab;
  });
  const labels = Int32Array.from(tokens, (_, i) => (i + 1 < s ? tokens[i + 1]! : -100));
  // docTokens > 0: documents of docTokens tokens packed back to back (the last one shorter),
  // positions restarting in each, as packed training data is; 0: one document
  const doc = docTokens > 0 ? Math.min(docTokens, s) : s;
  const positions = Int32Array.from({ length: s }, (_, i) => i % doc);
  const docLens = Int32Array.from({ length: Math.ceil(s / doc) }, (_, j) => Math.min(doc, s - j * doc));
  const shard = shardForSequenceParallel({ tokens, labels, positions, docLens }, sp, spRank);
  return { tokens: shard.tokens, labels: shard.labels, positions: shard.positions, docLens: shard.docLens, normalizer: s - 1 };
}
