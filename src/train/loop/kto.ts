/**
 * Kahneman–Tversky optimization (stage `kto`): one optimizer step over unpaired examples tagged
 * desirable or undesirable (ktoLoss.ts for the math), as LLaMA-Factory's CustomKTOTrainer runs it
 * on top of TRL: each example carries a mismatched sequence (its prompt with another example's
 * completion, built by the data pipeline) whose policy and reference log-probs estimate the KL
 * term of its micro-batch; the policy's KL forwards are never backpropagated (detached).
 *
 * Granularity as in TRL with gradient accumulation and data parallelism: the loss is computed per
 * micro-batch, its KL being the mean over the world's replicas of their micro-batch means
 * (TRL gathers it across processes), clamped at 0; the step's loss is the mean over its
 * micro-batches (and over replicas, by the gradient averaging). Collectives per step, the same on
 * every rank: one SP all-reduce of every sequence's partial sums (so no nonlinearity ever sees a
 * partial sum), then one world all-reduce of the KL sums per micro-batch and the metric sums,
 * which only SP rank 0 of each replica contributes (its SP group holds the same reduced values).
 *
 * Metrics (TRL's names, over the world's examples of the step; 0 when the step had none of that
 * kind): rewards/chosen, rewards/rejected (means of β(π − ρ)), rewards/margins (their difference),
 * logps/chosen, logps/rejected (means of the policy sums), kl (mean of the micro-batch estimates).
 * With precompute_ref_log_probs the items carry the reference's target and KL sums instead
 * (scored before training); SP rank 0 writes them into the same all-reduce.
 * Must never let the reference or the KL forwards touch gradients.
 */
import type { Model } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { backwardInReverse, carriedReference, forwardLogps, type ReferenceModel, type ScoredReference } from './dpo.js';
import { replicaBatches } from './evaluate.js';
import { ktoBatchTerms, ktoKl, type KtoExample, type KtoSettings } from './ktoLoss.js';
import { shardSequence, type PackedSequence, type SequenceShard } from './sequences.js';
import { dropoutKeyOf, type StepSums } from './StepSums.js';

/** One KTO example as the loop reads it: the trained sequence, its mismatched KL sequence, its tag. */
export interface KtoItem {
  target: PackedSequence;
  kl: PackedSequence;
  desirable: boolean;
  /** precompute_ref_log_probs: the reference's [target, KL sequence] log-prob sums, scored before training */
  reference?: ScoredReference;
}

export interface KtoOptions extends KtoSettings {
  /** absent when the items carry the reference's sums (precompute_ref_log_probs) */
  reference?: ReferenceModel;
  /** per_device_train_batch_size: the step's items are micro-batches of this many */
  batch: number;
}

/** The metrics.jsonl names of stage kto, in the order every rank reports them. */
export const KTO_METRICS = ['rewards/chosen', 'rewards/rejected', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'kl'] as const;

/** Reduced per-item sums of a set of KTO items (after the SP all-reduce). */
interface ItemLogps {
  n: number;
  /** [ref target n][policy target n][target tokens n][ref kl n][policy kl n] */
  v: Float64Array;
}

/** Reference and policy log-prob sums of every target and KL sequence, completed over the SP group. */
async function itemLogps(model: Model, reference: ReferenceModel | undefined, runtime: ParallelRuntime, items: readonly KtoItem[], targets: readonly SequenceShard[], kls: readonly SequenceShard[], dropoutKey?: (i: number) => number | undefined): Promise<ItemLogps> {
  const n = targets.length;
  const v = new Float64Array(5 * n);
  for (let i = 0; i < n; i++) v[2 * n + i] = targets[i]!.valid;
  const carried = carriedReference(items.map((it) => it.reference));
  if (carried) {
    // complete sums: SP rank 0 holds them, the others add 0
    if (runtime.spRank === 0) for (let i = 0; i < n; i++) [v[i], v[3 * n + i]] = [carried[2 * i]!, carried[2 * i + 1]!];
  } else {
    if (!reference) throw Object.assign(new Error('kto needs a reference model or precomputed reference log-probs'), { code: 'ERR_STATE' });
    reference.enter?.();
    try {
      await forwardLogps(reference.model, targets, v, 0);
      await forwardLogps(reference.model, kls, v, 3 * n);
    } finally {
      reference.exit?.();
    }
  }
  // the KL forwards first: the last target forwarded keeps its activations for the first backward
  await forwardLogps(model, kls, v, 4 * n);
  await forwardLogps(model, targets, v, n, dropoutKey);
  await runtime.allReduceSum(v, 'sp');
  return { n, v };
}

function exampleOf(l: ItemLogps, items: readonly KtoItem[], i: number): KtoExample {
  const { n, v } = l;
  return { reference: v[i]!, policy: v[n + i]!, tokens: v[2 * n + i]!, desirable: items[i]!.desirable };
}

/**
 * World sums after the KL and metric all-reduce: per group g [kl policy − reference sum, pairs],
 * then [Σ reward chosen, Σ reward rejected, Σ logp chosen, Σ logp rejected, chosen, rejected].
 */
async function worldSums(runtime: ParallelRuntime, l: ItemLogps, items: readonly KtoItem[], groups: number, groupOf: (i: number) => number, beta: number): Promise<Float64Array> {
  const w = new Float64Array(2 * groups + 6);
  const m = 2 * groups;
  if (runtime.spRank === 0) {
    const { n, v } = l;
    for (let i = 0; i < n; i++) {
      const g = groupOf(i);
      w[2 * g] = w[2 * g]! + (v[4 * n + i]! - v[3 * n + i]!);
      w[2 * g + 1] = w[2 * g + 1]! + 1;
      const e = exampleOf(l, items, i);
      const k = e.desirable ? 0 : 1;
      w[m + k] = w[m + k]! + beta * (e.policy - e.reference);
      w[m + 2 + k] = w[m + 2 + k]! + e.policy;
      w[m + 4 + k] = w[m + 4 + k]! + 1;
    }
  }
  await runtime.allReduceSum(w, 'world');
  return w;
}

/** The KTO metrics of world sums (`groups` micro-batch KL estimates averaged). */
function ktoMetrics(w: Float64Array, kls: readonly number[]): Record<(typeof KTO_METRICS)[number], number> {
  const m = w.length - 6;
  const mean = (k: number) => (w[m + 4 + (k % 2)]! > 0 ? w[m + k]! / w[m + 4 + (k % 2)]! : 0);
  const chosen = mean(0), rejected = mean(1);
  return {
    'rewards/chosen': chosen,
    'rewards/rejected': rejected,
    'rewards/margins': chosen - rejected,
    'logps/chosen': mean(2),
    'logps/rejected': mean(3),
    kl: kls.length ? kls.reduce((a, x) => a + x, 0) / kls.length : 0,
  };
}

/**
 * The kto step of one rank for optimizer step `step`: forwards, the loss per micro-batch, the
 * weighted backwards accumulating into the model's gradients (the caller reduces and applies
 * them). `factor` (loss scaling) multiplies the gradients.
 */
export async function ktoStep(model: Model, runtime: ParallelRuntime, items: readonly KtoItem[], step: number, factor: number, o: KtoOptions): Promise<StepSums> {
  const dropoutKey = model.lora && model.lora.dropout > 0 ? (i: number) => dropoutKeyOf(step, i) : undefined;
  const targets = items.map((it) => shardSequence(it.target, runtime.sp, runtime.spRank));
  const kls = items.map((it) => shardSequence(it.kl, runtime.sp, runtime.spRank));
  const l = await itemLogps(model, o.reference, runtime, items, targets, kls, dropoutKey);
  const groups = Math.ceil(items.length / o.batch);
  const groupOf = (i: number) => Math.floor(i / o.batch);
  const w = await worldSums(runtime, l, items, groups, groupOf, o.beta);
  const dPolicy = new Float64Array(items.length);
  const klOf: number[] = [];
  let loss = 0;
  for (let g = 0; g < groups; g++) {
    const kl = ktoKl(w[2 * g]!, 0, w[2 * g + 1]!);
    klOf.push(kl);
    const first = g * o.batch;
    const batch = items.slice(first, first + o.batch).map((_, k) => exampleOf(l, items, first + k));
    const t = ktoBatchTerms(o, batch, kl);
    loss += t.loss / groups;
    for (let k = 0; k < batch.length; k++) dPolicy[first + k] = (factor * t.dPolicy[k]!) / groups;
  }
  const localTokens = await backwardInReverse(model, targets, dPolicy, dropoutKey);
  const lead = runtime.spRank === 0 ? 1 : 0;
  const metrics = ktoMetrics(w, klOf);
  // every replica's SP rank 0 reports the world's values; the loop divides the world sum by dp
  return {
    lossSum: loss * lead,
    localTokens: localTokens + kls.reduce((a, s) => a + s.tokens.length - s.padding, 0),
    validTokens: targets.reduce((a, s) => a + s.valid, 0),
    metrics: Object.fromEntries(KTO_METRICS.map((k) => [k, metrics[k] * lead])),
  };
}

/**
 * Held-out KTO evaluation, forward only: per batch of per_device_eval_batch_size (each replica
 * every dp-th item) the batch's loss with its own KL estimate (the replica's, since replicas may
 * hold different numbers of batches), then means over the world: eval_loss weighted by batch
 * sizes, and the metrics over examples. Under ZeRO 3 a replica one item short forwards item 0
 * once more in its last batch, not counted (evaluate.ts, replicaBatches).
 */
export async function evaluateKto(model: Model, runtime: ParallelRuntime, items: readonly KtoItem[], o: Omit<KtoOptions, 'batch'> & { batch: number }): Promise<{ loss: number; metrics: Record<string, number>; samples: number; batches: number }> {
  const batches = replicaBatches(items, runtime, o.batch, model);
  // [Σ batch loss × size, Σ sizes, Σ kl × size, then the six metric sums]
  const totals = new Float64Array(9);
  for (const { items: b, counted } of batches) {
    const targets = b.map((it) => shardSequence(it.target, runtime.sp, runtime.spRank));
    const kls = b.map((it) => shardSequence(it.kl, runtime.sp, runtime.spRank));
    const l = await itemLogps(model, o.reference, runtime, b, targets, kls);
    if (runtime.spRank !== 0 || counted === 0) continue;
    const { n: all, v } = l;
    // the batch's own items only (a ZeRO-3 filler at its end is forwarded, not counted)
    const n = counted;
    let klSum = 0;
    for (let i = 0; i < n; i++) klSum += v[4 * all + i]! - v[3 * all + i]!;
    const kl = ktoKl(klSum, 0, n);
    const ex = b.slice(0, n).map((_, i) => exampleOf(l, b, i));
    const t = ktoBatchTerms(o, ex, kl);
    totals[0] += t.loss * n;
    totals[1] += n;
    totals[2] += kl * n;
    for (const [i, e] of ex.entries()) {
      const k = e.desirable ? 0 : 1;
      totals[3 + k] += t.rewards[i]!;
      totals[5 + k] += e.policy;
      totals[7 + k] += 1;
    }
  }
  await runtime.allReduceSum(totals, 'world');
  const per = (s: number, c: number) => (totals[c]! > 0 ? totals[s]! / totals[c]! : 0);
  const chosen = per(3, 7), rejected = per(4, 8);
  return {
    loss: totals[1]! > 0 ? totals[0]! / totals[1]! : Number.NaN,
    metrics: { 'rewards/chosen': chosen, 'rewards/rejected': rejected, 'rewards/margins': chosen - rejected, 'logps/chosen': per(5, 7), 'logps/rejected': per(6, 8), kl: per(2, 1) },
    samples: items.length,
    batches: batches.length,
  };
}
