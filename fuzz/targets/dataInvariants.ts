/**
 * The contract of prepared training data (train/data/index.ts), checked on whatever the data
 * targets' inputs prepare to: every sequence fits cutoff_len, its token ids fit the vocabulary,
 * every label is -100 or a token id of the vocabulary, positions restart at each document and
 * the documents cover the sequence. Used by the fuzz targets only; it never repairs anything.
 */
import type { PreparedData, Sequence } from '../../src/train/data/index.js';
import { check } from './harness.js';

function checkSequence(s: Sequence, cutoffLen: number, vocab: number, what: string): void {
  const n = s.tokens.length;
  check(n > 0 && n <= cutoffLen, `${what}: ${n} tokens for cutoff_len ${cutoffLen}`);
  check(s.labels.length === n && s.positions.length === n, `${what}: tokens, labels and positions differ in length`);
  let covered = 0;
  for (const d of s.docLens) {
    check(d > 0, `${what}: document of length ${d}`);
    for (let i = 0; i < d; i++) check(s.positions[covered + i] === i, `${what}: position ${covered + i} is ${s.positions[covered + i]}, want ${i}`);
    covered += d;
  }
  check(covered === n, `${what}: documents cover ${covered} of ${n} tokens`);
  for (let i = 0; i < n; i++) {
    const t = s.tokens[i]!, l = s.labels[i]!;
    check(t >= 0 && t < vocab, `${what}: token ${t} at ${i} outside the vocabulary of ${vocab}`);
    check(l === -100 || (l >= 0 && l < vocab), `${what}: label ${l} at ${i} is neither -100 nor a token id below ${vocab}`);
  }
}

export function checkPrepared(p: PreparedData, cutoffLen: number, vocab: number): void {
  check(p.items.length > 0 && p.stats.items === p.items.length, `${p.items.length} items, stats say ${p.stats.items}`);
  if (p.kind === 'pairs') {
    p.items.forEach((pair, i) => {
      checkSequence(pair.chosen, cutoffLen, vocab, `pair ${i} chosen`);
      checkSequence(pair.rejected, cutoffLen, vocab, `pair ${i} rejected`);
    });
  } else if (p.kind === 'feedback') {
    p.items.forEach((it, i) => {
      checkSequence(it.target, cutoffLen, vocab, `kto example ${i}`);
      checkSequence(it.kl, cutoffLen, vocab, `kto example ${i} KL`);
    });
  } else p.items.forEach((s, i) => checkSequence(s, cutoffLen, vocab, `sequence ${i}`));
}
