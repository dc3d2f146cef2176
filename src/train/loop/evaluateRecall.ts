/**
 * Recall accuracy of the built-in key–value tasks on held-out examples, under any layout: each
 * replica scores its share, each SP group assembles the per-token losses and argmax ids of the
 * whole sequence (one SP all-reduce per example), and the counts are summed over the world. An
 * answer counts as recalled when the model's argmax equals the label at every one of its tokens
 * (chance: 10^-value_len). Must never update weights or gradients.
 */
import type { Model } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { scoreRecall } from '../data/recallTask.js';
import { IGNORE_INDEX, shardSequence, type PackedSequence } from './sequences.js';

export interface RecallEval {
  examples: number;
  /** examples whose every answer token is the argmax */
  exact: number;
  accuracy: number;
  /** questions asked (an example may ask several) */
  answers: number;
  /** questions whose every answer token is the argmax */
  answersCorrect: number;
  /** answersCorrect / answers: the headline recall accuracy (chance: 10^-value_len) */
  answerAccuracy: number;
  /** mean p(answer token) over the answer tokens */
  meanAnswerProb: number;
}

export async function evaluateRecall(model: Model, runtime: ParallelRuntime, items: readonly PackedSequence[]): Promise<RecallEval> {
  const per = Math.floor(items.length / runtime.dp);
  const sums = new Float64Array(6); // examples, exact, answer tokens, sum of p, answers, answers correct
  for (let i = 0; i < per; i++) {
    const seq = items[i * runtime.dp + runtime.dpRank]!;
    const shard = shardSequence(seq, runtime.sp, runtime.spRank);
    const n = shard.tokens.length;
    const tokenLoss = new Float32Array(n);
    const tokenArgmax = new Int32Array(n);
    await model.forward({ tokens: shard.tokens, labels: shard.labels, positions: shard.positions, docLens: shard.docLens, normalizer: 1, tokenLoss, tokenArgmax });
    // [losses | argmax ids] of the whole (padded) sequence; ids are exact in a double
    const full = new Float64Array(2 * n * runtime.sp);
    for (let i = 0; i < n; i++) {
      full[runtime.spRank * n + i] = tokenLoss[i]!;
      full[(runtime.sp + runtime.spRank) * n + i] = tokenArgmax[i]!;
    }
    await runtime.allReduceSum(full, 'sp');
    const len = seq.tokens.length;
    const predicted = new Int32Array(len);
    for (let t = 0; t < len; t++) {
      predicted[t] = full[runtime.sp * n + t]!;
      if (seq.labels[t] === IGNORE_INDEX) continue;
      sums[3] += Math.exp(-full[t]!);
      sums[2]++;
    }
    const s = scoreRecall({ labels: seq.labels, docLens: seq.docLens ?? Int32Array.of(len) }, predicted);
    sums[0] += s.examples;
    sums[1] += s.exact;
    sums[4] += s.answers;
    sums[5] += s.answersCorrect;
  }
  // every SP member computed the same counts: let one per replica contribute
  if (runtime.spRank !== 0) sums.fill(0);
  await runtime.allReduceSum(sums, 'world');
  return {
    examples: sums[0]!,
    exact: sums[1]!,
    accuracy: sums[0]! > 0 ? sums[1]! / sums[0]! : 0,
    answers: sums[4]!,
    answersCorrect: sums[5]!,
    answerAccuracy: sums[4]! > 0 ? sums[5]! / sums[4]! : 0,
    meanAnswerProb: sums[2]! > 0 ? sums[3]! / sums[2]! : 0,
  };
}
