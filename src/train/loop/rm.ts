/**
 * Reward modelling (stage `rm`): a value head on the final hidden states, the pairwise loss of
 * one optimizer step over chosen/rejected pairs, its gradient sent back into the model through
 * the hidden-state gradient of the engine's backward, and the metrics LLaMA-Factory logs.
 *
 * The head is TRL's / LLaMA-Factory's `v_head.summary` (weight [1, hidden], bias [1]); a
 * sequence's score is the head's output at its last non-padding token (REFERENCE §9):
 * s = w · h_last + b. For a pair, L = −log σ(sc − sr), averaged over the step's pairs; accuracy
 * is the share with sc > sr.
 *
 * Under sequence parallelism the last token sits on exactly one rank of the SP group (which one
 * depends on the sequence's length): that rank computes the score, every other member
 * contributes 0, and one SP all-reduce for the whole step gives every member every score, hence
 * the same loss and coefficients. Only the holding rank sends a hidden-state gradient and adds
 * to the head's gradients; the gradient reduction over the SP group then completes both.
 *
 * Must never compute a coefficient from an unreduced score, or let a rank that does not hold a
 * sequence's last token add to the head's gradient for it.
 */
import type { Model, TrainableSet } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import type { PreferenceItem } from './dpo.js';
import { logSigmoid, sigmoid } from './preferenceLoss.js';
import { IGNORE_INDEX, shardSequence, type PackedSequence, type SequenceShard } from './sequences.js';

export const VALUE_HEAD_WEIGHT = 'v_head.summary.weight';
export const VALUE_HEAD_BIAS = 'v_head.summary.bias';

/** The value head's parameters and gradients as one trainable set ([w (hidden) | b], 16-aligned views). */
export function valueHead(hidden: number, init?: { weight: Float32Array; bias: number }): TrainableSet {
  const biasAt = Math.ceil(hidden / 16) * 16;
  const params = new Float32Array(biasAt + 16);
  if (init) {
    params.set(init.weight, 0);
    params[biasAt] = init.bias;
  }
  return {
    params,
    grads: new Float32Array(params.length),
    views: [
      { name: VALUE_HEAD_WEIGHT, offset: 0, shape: [1, hidden], numel: hidden },
      { name: VALUE_HEAD_BIAS, offset: biasAt, shape: [1], numel: 1 },
    ],
  };
}

/** The head's score of one final hidden state: w · h + b (fp64 accumulation). */
export function scoreOf(head: TrainableSet, h: Float32Array): number {
  let s = head.params[head.views[1]!.offset]!;
  for (let d = 0; d < h.length; d++) s += head.params[d]! * h[d]!;
  return s;
}

/** The pairwise loss of one pair of scores and dL/dsc (dL/dsr is its negative). */
export function rmPairTerms(chosen: number, rejected: number): { loss: number; dChosen: number } {
  const z = chosen - rejected;
  return { loss: -logSigmoid(z), dChosen: -sigmoid(-z) };
}

/** Global index of the last non-padding token of `seq` (padding: documents of negative length). */
export function lastTokenIndex(seq: PackedSequence): number {
  const docs = seq.docLens ?? Int32Array.of(seq.tokens.length);
  let end = 0, last = -1;
  for (const len of docs) {
    end += Math.abs(len);
    if (len > 0) last = end - 1;
  }
  if (last < 0) throw new Error('a reward-model sequence holds no token that is not padding');
  return last;
}

/** The local row of `s` that holds global token `index`, or -1 when another rank holds it. */
export function lastTokenRow(s: SequenceShard, index: number): number {
  const row = index - s.offset;
  return row >= 0 && row < s.tokens.length ? row : -1;
}

export interface RmSums {
  loss: number;
  accuracy: number;
  chosenScore: number;
  rejectedScore: number;
}

export interface RmStepResult {
  sums: RmSums;
  pairs: number;
  localTokens: number;
}

/**
 * Forward/backward of one optimizer step of stage rm on this rank: every side forwarded (its
 * labels ignored: no LM loss), scores completed over the SP group, then backwards in reverse with
 * the hidden-state gradient dL/ds · w at the score token; head gradients accumulate into `head`.
 * As in dpoStep, the last sequence is backpropagated from its saved activations and the others
 * are forwarded again (same inputs, same bits) right before their backward.
 */
export async function rmStep(o: {
  model: Model;
  head: TrainableSet;
  runtime: ParallelRuntime;
  items: readonly PreferenceItem[];
  /** multiplies the loss's gradient (loss scaling; 1: none) */
  scale?: number;
  dropoutKey?: (i: number) => number | undefined;
}): Promise<RmStepResult> {
  const { model, head, runtime, items } = o;
  const scale = o.scale ?? 1;
  const hidden = model.config.hiddenSize;
  const w = head.params.subarray(0, hidden);
  const biasAt = head.views[1]!.offset;
  const seqs = items.flatMap((p) => [p.chosen, p.rejected]);
  // no LM loss: every label ignored (the score reads the hidden state, not the logits)
  const shards = seqs.map((s) => shardSequence({ ...s, labels: new Int32Array(s.tokens.length).fill(IGNORE_INDEX) }, runtime.sp, runtime.spRank));
  const rows = shards.map((s, i) => lastTokenRow(s, lastTokenIndex(seqs[i]!)));
  const n = shards.length;
  const input = (i: number) => {
    const s = shards[i]!;
    return { tokens: s.tokens, labels: s.labels, positions: s.positions, docLens: s.docLens, normalizer: 1, dropoutKey: o.dropoutKey?.(i) };
  };
  const scores = new Float64Array(n);
  const lastHidden: (Float32Array | null)[] = [];
  for (let i = 0; i < n; i++) {
    await model.forward(input(i));
    const row = rows[i]!;
    const h = row >= 0 ? model.finalHidden(row) : null;
    lastHidden.push(h);
    if (h) scores[i] = scoreOf(head, h);
  }
  await runtime.allReduceSum(scores, 'sp');
  const sums: RmSums = { loss: 0, accuracy: 0, chosenScore: 0, rejectedScore: 0 };
  const dScore = new Float64Array(n);
  for (let p = 0; p < items.length; p++) {
    const c = scores[2 * p]!, r = scores[2 * p + 1]!;
    const t = rmPairTerms(c, r);
    dScore[2 * p] = (scale * t.dChosen) / items.length;
    dScore[2 * p + 1] = -(scale * t.dChosen) / items.length;
    sums.loss += t.loss;
    sums.accuracy += c > r ? 1 : 0;
    sums.chosenScore += c;
    sums.rejectedScore += r;
  }
  let localTokens = 0;
  const zeroWeights = (i: number) => new Float32Array(shards[i]!.tokens.length);
  for (let i = n - 1; i >= 0; i--) {
    const s = shards[i]!;
    if (i !== n - 1) await model.forward(input(i));
    const h = lastHidden[i];
    let dHidden: Float32Array | undefined;
    if (h) {
      const g = dScore[i]!;
      dHidden = new Float32Array(s.tokens.length * hidden);
      const row = rows[i]!;
      for (let d = 0; d < hidden; d++) {
        dHidden[row * hidden + d] = g * w[d]!;
        head.grads[d] += g * h[d]!;
      }
      head.grads[biasAt] += g;
    }
    // token weights 0: the LM head adds nothing; only the score's gradient flows
    await model.backward(zeroWeights(i), dHidden);
    localTokens += s.tokens.length - s.padding;
  }
  return { sums, pairs: items.length, localTokens };
}

/**
 * Forward-only scores of held-out pairs (each replica every dp-th pair, in batches; scores
 * completed over the SP group per batch, then world sums): mean pairwise loss, accuracy and the
 * mean chosen / rejected scores, as eval_loss, eval_accuracy, eval_chosen_score, eval_rejected_score.
 */
export async function evaluateRewardModel(model: Model, head: TrainableSet, runtime: ParallelRuntime, pairs: readonly PreferenceItem[], batch: number): Promise<{ loss: number; metrics: Record<string, number>; samples: number; batches: number }> {
  const mine = pairs.filter((_, i) => i % runtime.dp === runtime.dpRank);
  const batches = Array.from({ length: Math.ceil(mine.length / batch) }, (_, b) => mine.slice(b * batch, (b + 1) * batch));
  // loss, accuracy, chosen score, rejected score, pairs
  const totals = new Float64Array(5);
  for (const b of batches) {
    const seqs = b.flatMap((p) => [p.chosen, p.rejected]);
    const scores = new Float64Array(seqs.length);
    for (const [i, seq] of seqs.entries()) {
      const s = shardSequence({ ...seq, labels: new Int32Array(seq.tokens.length).fill(IGNORE_INDEX) }, runtime.sp, runtime.spRank);
      await model.forward({ tokens: s.tokens, labels: s.labels, positions: s.positions, docLens: s.docLens, normalizer: 1 });
      const row = lastTokenRow(s, lastTokenIndex(seq));
      if (row < 0) continue;
      scores[i] = scoreOf(head, model.finalHidden(row));
    }
    await runtime.allReduceSum(scores, 'sp');
    if (runtime.spRank !== 0) continue;
    for (let p = 0; p < b.length; p++) {
      const c = scores[2 * p]!, r = scores[2 * p + 1]!;
      totals[0] += rmPairTerms(c, r).loss;
      totals[1] += c > r ? 1 : 0;
      totals[2] += c;
      totals[3] += r;
      totals[4]++;
    }
  }
  await runtime.allReduceSum(totals, 'world');
  const mean = (k: number) => (totals[4]! > 0 ? totals[k]! / totals[4]! : Number.NaN);
  return { loss: mean(0), metrics: { accuracy: mean(1), chosen_score: mean(2), rejected_score: mean(3) }, samples: pairs.length, batches: batches.length };
}
