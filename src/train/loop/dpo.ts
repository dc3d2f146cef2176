/**
 * Direct preference optimization (stage `dpo`): the preference loss (`pref_loss`, see
 * preferenceLoss.ts) of one optimizer step over chosen/rejected pairs, its gradient pushed into
 * the model through per-token loss weights, and the rewards metrics LLaMA-Factory users read.
 *
 * For a pair with policy log-probabilities πc, πr (sums of log p over response tokens) and
 * reference ones ρc, ρr, the sigmoid loss is z = β((πc − ρc) − (πr − ρr)), L = −log σ(z); every
 * loss is averaged over the pairs of the optimizer step (gradients are then averaged over data-parallel replicas, so the whole
 * world's mean results). Since π = −Σ token_loss, dL/d token_loss_t = −dL/dπ for every response
 * token t: the engine's weighted backward gives the exact gradient with no new kernel.
 *
 * Under sequence parallelism each rank holds part of every sequence: partial log-prob sums are
 * added over the SP group before the loss (one all-reduce for the whole step), so every member
 * computes the same loss and coefficients; the response token counts of the averaging losses are
 * reduced the same way. The reference (never loaded for orpo and simpo) is a frozen copy of the initial weights
 * (full fine-tuning) or the same model with its adapters disabled (LoRA); with
 * precompute_ref_log_probs the items carry its sums instead, scored before training.
 *
 * Must never let the reference pass touch gradients, or compute a coefficient from unreduced
 * partial sums.
 */
import type { ForwardInput, Model } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { preferencePairTerms, sigmoidLoss, usesReference, type PairTerms, type PrefLoss, type PrefLossSettings, type SideLogps } from './preferenceLoss.js';
import { IGNORE_INDEX, shardSequence, type PackedSequence, type SequenceShard } from './sequences.js';

/** One preference pair as the loop reads it (both sides built by the data pipeline). */
export interface PreferenceItem {
  chosen: PackedSequence;
  rejected: PackedSequence;
  /** precompute_ref_log_probs: the reference's [chosen, rejected] log-prob sums, scored before training */
  reference?: ScoredReference;
}

/**
 * Two reference log-prob sums an item carries when they were scored before training
 * (referenceCache/): dpo [chosen, rejected], kto [target, KL sequence]; each already completed
 * over the SP group, the bits the reference pass of the step would have produced.
 */
export type ScoredReference = readonly [number, number];

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

/** The sigmoid DPO loss of one pair and its derivatives (pure; checked against hand values). */
export function dpoPairTerms(policyChosen: number, policyRejected: number, refChosen: number, refRejected: number, beta: number): DpoPairTerms {
  const t = preferencePairTerms(sigmoidLoss(beta), { policy: policyChosen, reference: refChosen, tokens: 1 }, { policy: policyRejected, reference: refRejected, tokens: 1 });
  return { loss: t.loss, dChosen: t.dChosen, dRejected: t.dRejected, rewardChosen: t.rewardChosen, rewardRejected: t.rewardRejected };
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
  /** orpo only (zero otherwise): the SFT and odds-ratio parts of the loss */
  sftLoss: number;
  oddsRatioLoss: number;
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
 * Runs the preference forward/backward of one optimizer step on this rank: reference (when the
 * loss has one) and policy log-probs of every side, one SP all-reduce of those partial sums and
 * of the response token counts, the loss, then weighted backwards accumulating into the model's
 * gradients (the caller reduces and applies them).
 *
 * Policy forwards run in order and backwards in reverse, so the last sequence forwarded is
 * backpropagated from its saved activations; the others are forwarded again (same inputs, same
 * bits) right before their backward.
 */
export async function dpoStep(o: {
  model: Model;
  /** required by the losses that use one (sigmoid, hinge, ipo); never read by orpo and simpo */
  reference?: ReferenceModel;
  runtime: ParallelRuntime;
  items: readonly PreferenceItem[];
  beta: number;
  /** pref_loss and its extras (default: the plain sigmoid loss with `beta`) */
  loss?: Omit<PrefLossSettings, 'beta'>;
  /** multiplies the loss's gradient (loss-scaling switch and scaled-loss faults; 1: none) */
  scale?: number;
  /**
   * LoRA dropout key of policy sequence i (chosen of pair p is 2p, rejected 2p + 1); both forwards
   * of a sequence use the same key, so the backward sees the masks its log-prob was computed with.
   * The reference never drops out.
   */
  dropoutKey?: (i: number) => number | undefined;
}): Promise<DpoStepResult> {
  const { model, runtime, items } = o;
  const settings: PrefLossSettings = { ...(o.loss ?? sigmoidLoss(o.beta)), beta: o.beta };
  const scale = o.scale ?? 1;
  const seqs = items.flatMap((p) => [p.chosen, p.rejected]);
  const shards = seqs.map((s) => shardSequence(s, runtime.sp, runtime.spRank));
  const n = shards.length;
  // [ref 0..n) [policy 0..n) [response tokens 0..n): partial sums, completed over the SP group below
  const logps = new Float64Array(3 * n);
  for (let i = 0; i < n; i++) logps[2 * n + i] = shards[i]!.valid;
  await referenceLogps(o.reference, settings.kind, shards, logps, carriedReference(items.map((p) => p.reference)), runtime.spRank);
  await forwardLogps(model, shards, logps, n, o.dropoutKey);
  await runtime.allReduceSum(logps, 'sp');

  const sums = emptySums();
  // dL/dπ per sequence, the step's loss being the mean over this replica's pairs
  const dPolicy = new Float64Array(n);
  for (let p = 0; p < items.length; p++) {
    const c = 2 * p, r = 2 * p + 1;
    const t = preferencePairTerms(settings, sideOf(logps, n, c), sideOf(logps, n, r));
    dPolicy[c] = (scale * t.dChosen) / items.length;
    dPolicy[r] = (scale * t.dRejected) / items.length;
    addPair(sums, t);
  }
  const localTokens = await backwardInReverse(model, shards, dPolicy, o.dropoutKey);
  return { sums, pairs: items.length, localTokens, valid: shards.reduce((a, s) => a + s.valid, 0) };
}

/**
 * The weighted backwards of `shards` (policy sequences whose loss derivative with respect to
 * their log-prob sums is `dPolicy`), last to first: the last one was the latest forward, so its
 * saved activations serve; the others are forwarded again (same inputs and dropout key, same
 * bits) right before their backward. Returns the tokens processed (padding excluded).
 */
export async function backwardInReverse(model: Model, shards: readonly SequenceShard[], dPolicy: Float64Array, dropoutKey?: (i: number) => number | undefined): Promise<number> {
  const n = shards.length;
  let localTokens = 0;
  for (let i = n - 1; i >= 0; i--) {
    const s = shards[i]!;
    if (i !== n - 1) await model.forward(forwardInput(s, new Float32Array(s.tokens.length), dropoutKey?.(i)));
    // π = −Σ token_loss  =>  dL/d token_loss_t = −dL/dπ on supervised tokens, 0 elsewhere
    const w = new Float32Array(s.tokens.length);
    const coef = -dPolicy[i]!;
    for (let t = 0; t < w.length; t++) if (s.labels[t] !== IGNORE_INDEX) w[t] = coef;
    await model.backward(w);
    localTokens += s.tokens.length - s.padding;
  }
  return localTokens;
}

/** Writes the partial log-prob sum of shard i into into[at + i], forward only. */
export async function forwardLogps(model: Model, shards: readonly SequenceShard[], into: Float64Array, at: number, dropoutKey?: (i: number) => number | undefined): Promise<void> {
  for (const [i, s] of shards.entries()) {
    const tl = new Float32Array(s.tokens.length);
    await model.forward(forwardInput(s, tl, dropoutKey?.(i)));
    into[at + i] = logProb(tl, s);
  }
}

/**
 * The sums items carry, two per item in sequence order (null when none carries any). Either
 * every item carries them or none does: a step never mixes scored and unscored items.
 */
export function carriedReference(refs: readonly (ScoredReference | undefined)[]): Float64Array | null {
  if (refs.every((r) => r === undefined)) return null;
  const out = new Float64Array(2 * refs.length);
  for (const [i, r] of refs.entries()) {
    if (!r) throw Object.assign(new Error('some items carry precomputed reference log-probs and some do not'), { code: 'ERR_STATE' });
    out[2 * i] = r[0];
    out[2 * i + 1] = r[1];
  }
  return out;
}

/**
 * The reference's partial log-prob sums of `shards` into logps[0..n) (nothing for the
 * reference-free losses); forward only, adapters switched off and back by the reference's hooks.
 * With `carried` sums (already complete) SP rank 0 writes them and the others 0, so the SP
 * all-reduce that completes the partial sums leaves them as they are.
 */
export async function referenceLogps(reference: ReferenceModel | undefined, kind: PrefLoss, shards: readonly SequenceShard[], logps: Float64Array, carried: Float64Array | null = null, spRank = 0): Promise<void> {
  if (!usesReference(kind)) return;
  if (carried) {
    if (spRank === 0) logps.set(carried, 0);
    return;
  }
  if (!reference) throw Object.assign(new Error(`pref_loss ${kind} needs a reference model`), { code: 'ERR_STATE' });
  reference.enter?.();
  try {
    await forwardLogps(reference.model, shards, logps, 0);
  } finally {
    reference.exit?.();
  }
}

export function emptySums(): DpoSums {
  return { loss: 0, rewardChosen: 0, rewardRejected: 0, accuracy: 0, logpChosen: 0, logpRejected: 0, sftLoss: 0, oddsRatioLoss: 0 };
}

/** Sequence i's side of a reduced [ref n][policy n][tokens n] array. */
export function sideOf(logps: Float64Array, n: number, i: number): SideLogps {
  return { reference: logps[i]!, policy: logps[n + i]!, tokens: logps[2 * n + i]! };
}

/** Adds one pair's terms to the running sums (accuracy: chosen's reward strictly above rejected's). */
export function addPair(sums: DpoSums, t: PairTerms): void {
  sums.loss += t.loss;
  sums.rewardChosen += t.rewardChosen;
  sums.rewardRejected += t.rewardRejected;
  sums.accuracy += t.rewardChosen > t.rewardRejected ? 1 : 0;
  sums.logpChosen += t.logpChosen;
  sums.logpRejected += t.logpRejected;
  sums.sftLoss += t.sftLoss;
  sums.oddsRatioLoss += t.oddsRatioLoss;
}
