/**
 * Direct preference optimization (stage `dpo`): the sigmoid loss of one optimizer step over
 * chosen/rejected pairs, its gradient pushed into the model through per-token loss weights,
 * and the rewards metrics LLaMA-Factory users read.
 *
 * For a pair with policy log-probabilities πc, πr (sums of log p over response tokens) and
 * reference ones ρc, ρr:  z = β((πc − ρc) − (πr − ρr)),  L = −log σ(z), averaged over the pairs
 * of the optimizer step (gradients are then averaged over data-parallel replicas, so the whole
 * world's mean results). Since π = −Σ token_loss, dL/d token_loss_t = −dL/dπ for every response
 * token t: the engine's weighted backward gives the exact gradient with no new kernel.
 *
 * Under sequence parallelism each rank holds part of every sequence: partial log-prob sums are
 * added over the SP group before the loss (one all-reduce for the whole step), so every member
 * computes the same loss and coefficients. The reference is a frozen copy of the initial weights
 * (full fine-tuning) or the same model with its adapters disabled (LoRA).
 *
 * Must never let the reference pass touch gradients, or compute a coefficient from unreduced
 * partial sums.
 */
import type { ForwardInput, Model } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { IGNORE_INDEX, shardSequence, type PackedSequence, type SequenceShard } from './sequences.js';

/** One preference pair as the loop reads it (both sides built by the data pipeline). */
export interface PreferenceItem {
  chosen: PackedSequence;
  rejected: PackedSequence;
}

/** Where the reference log-probabilities come from. */
export interface ReferenceModel {
  model: Model;
  /** called before the reference forwards (LoRA: disable adapters) */
  enter?(): void;
  /** called after them (LoRA: enable adapters again) */
  exit?(): void;
}

export interface DpoPairTerms {
  /** −log σ(z) */
  loss: number;
  /** dL/dπc and dL/dπr for this pair alone (before averaging over the step's pairs) */
  dChosen: number;
  dRejected: number;
  /** β(πc − ρc) and β(πr − ρr) */
  rewardChosen: number;
  rewardRejected: number;
}

/** log σ(x) without overflow for large |x|. */
function logSigmoid(x: number): number {
  return x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x));
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** The sigmoid DPO loss of one pair and its derivatives (pure; checked against hand values). */
export function dpoPairTerms(policyChosen: number, policyRejected: number, refChosen: number, refRejected: number, beta: number): DpoPairTerms {
  const rewardChosen = beta * (policyChosen - refChosen);
  const rewardRejected = beta * (policyRejected - refRejected);
  const z = rewardChosen - rewardRejected;
  // dL/dz = −σ(−z)
  const g = -sigmoid(-z);
  return { loss: -logSigmoid(z), dChosen: beta * g, dRejected: -beta * g, rewardChosen, rewardRejected };
}

export interface DpoStepResult {
  /** this replica's sums over its pairs: loss, rewards, accuracy, margin, log-probs */
  sums: DpoSums;
  /** pairs this replica processed */
  pairs: number;
  /** tokens this rank processed (its shards, padding excluded; the backward passes not counted again) */
  localTokens: number;
  /** supervised tokens in this rank's shards */
  valid: number;
}

export interface DpoSums {
  loss: number;
  rewardChosen: number;
  rewardRejected: number;
  accuracy: number;
  logpChosen: number;
  logpRejected: number;
}

/** Σ log p(label) over the supervised tokens of one shard (its part of the sequence's π). */
export function logProb(tokenLoss: Float32Array, shard: SequenceShard): number {
  let s = 0;
  for (let t = 0; t < tokenLoss.length; t++) if (shard.labels[t] !== IGNORE_INDEX) s -= tokenLoss[t]!;
  return s;
}

export function forwardInput(s: SequenceShard, tokenLoss: Float32Array, dropoutKey?: number): ForwardInput {
  return { tokens: s.tokens, labels: s.labels, positions: s.positions, docLens: s.docLens, normalizer: 1, tokenLoss, dropoutKey };
}

/**
 * Runs the DPO forward/backward of one optimizer step on this rank: reference and policy
 * log-probs of every side, one SP all-reduce, the loss, then weighted backwards accumulating
 * into the model's gradients (the caller reduces and applies them).
 *
 * Policy forwards run in order and backwards in reverse, so the last sequence forwarded is
 * backpropagated from its saved activations; the others are forwarded again (same inputs, same
 * bits) right before their backward.
 */
export async function dpoStep(o: {
  model: Model;
  reference: ReferenceModel;
  runtime: ParallelRuntime;
  items: readonly PreferenceItem[];
  beta: number;
  /** multiplies the loss's gradient (loss-scaling switch and scaled-loss faults; 1: none) */
  scale?: number;
  /**
   * LoRA dropout key of policy sequence i (chosen of pair p is 2p, rejected 2p + 1); both forwards
   * of a sequence use the same key, so the backward sees the masks its log-prob was computed with.
   * The reference never drops out.
   */
  dropoutKey?: (i: number) => number | undefined;
}): Promise<DpoStepResult> {
  const { model, reference, runtime, items, beta } = o;
  const scale = o.scale ?? 1;
  const seqs = items.flatMap((p) => [p.chosen, p.rejected]);
  const shards = seqs.map((s) => shardSequence(s, runtime.sp, runtime.spRank));
  const n = shards.length;
  // [ref 0..n) [policy 0..n): partial sums, completed over the SP group below
  const logps = new Float64Array(2 * n);
  reference.enter?.();
  try {
    for (let i = 0; i < n; i++) {
      const tl = new Float32Array(shards[i]!.tokens.length);
      await reference.model.forward(forwardInput(shards[i]!, tl));
      logps[i] = logProb(tl, shards[i]!);
    }
  } finally {
    reference.exit?.();
  }
  for (let i = 0; i < n; i++) {
    const tl = new Float32Array(shards[i]!.tokens.length);
    await model.forward(forwardInput(shards[i]!, tl, o.dropoutKey?.(i)));
    logps[n + i] = logProb(tl, shards[i]!);
  }
  await runtime.allReduceSum(logps, 'sp');

  const sums: DpoSums = { loss: 0, rewardChosen: 0, rewardRejected: 0, accuracy: 0, logpChosen: 0, logpRejected: 0 };
  // dL/dπ per sequence, the step's loss being the mean over this replica's pairs
  const dPolicy = new Float64Array(n);
  for (let p = 0; p < items.length; p++) {
    const c = 2 * p, r = 2 * p + 1;
    const t = dpoPairTerms(logps[n + c]!, logps[n + r]!, logps[c]!, logps[r]!, beta);
    dPolicy[c] = (scale * t.dChosen) / items.length;
    dPolicy[r] = (scale * t.dRejected) / items.length;
    sums.loss += t.loss;
    sums.rewardChosen += t.rewardChosen;
    sums.rewardRejected += t.rewardRejected;
    sums.accuracy += t.rewardChosen > t.rewardRejected ? 1 : 0;
    sums.logpChosen += logps[n + c]!;
    sums.logpRejected += logps[n + r]!;
  }
  let localTokens = 0;
  for (let i = n - 1; i >= 0; i--) {
    const s = shards[i]!;
    if (i !== n - 1) await model.forward(forwardInput(s, new Float32Array(s.tokens.length), o.dropoutKey?.(i)));
    // π = −Σ token_loss  =>  dL/d token_loss_t = −dL/dπ on supervised tokens, 0 elsewhere
    const w = new Float32Array(s.tokens.length);
    const coef = -dPolicy[i]!;
    for (let t = 0; t < w.length; t++) if (s.labels[t] !== IGNORE_INDEX) w[t] = coef;
    await model.backward(w);
    localTokens += s.tokens.length - s.padding;
  }
  return { sums, pairs: items.length, localTokens, valid: shards.reduce((a, s) => a + s.valid, 0) };
}
