/**
 * The step benchmarks' sequence (`bench step`, `bench step --sp`, `bench memory`): s pseudo-random
 * tokens from a fixed LCG, labels shifted by one, global positions, one document; and this rank's
 * shard of it under sequence parallelism. Deterministic: every rank builds the same sequence.
 */
import { shardForSequenceParallel } from '../src/train/data/shard.js';

export function benchSequenceShard(s: number, vocab: number, sp: number, spRank: number) {
  let x = 12345;
  const tokens = Int32Array.from({ length: s }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x % vocab;
  });
  const labels = Int32Array.from(tokens, (_, i) => (i + 1 < s ? tokens[i + 1]! : -100));
  const positions = Int32Array.from({ length: s }, (_, i) => i);
  const shard = shardForSequenceParallel({ tokens, labels, positions, docLens: Int32Array.of(s) }, sp, spRank);
  return { tokens: shard.tokens, labels: shard.labels, positions: shard.positions, docLens: shard.docLens, normalizer: s - 1 };
}
