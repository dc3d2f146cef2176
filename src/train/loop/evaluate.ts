/**
 * Evaluation passes over held-out data under any layout (forward only: no gradients, no
 * dropout), with Hugging Face Trainer's semantics:
 * - language modelling (pt/sft): each replica takes every dp-th item, in batches of
 *   per_device_eval_batch_size; a batch's loss is its summed token loss over its supervised tokens
 *   (both summed over the SP group first); eval_loss is the mean of the batch losses weighted by
 *   their item counts (HF repeats each batch loss batch-size times). eval_accuracy (LLaMA-Factory's
 *   compute_accuracy) is the mean over items of each item's share of argmax == label.
 * - preference (dpo): the `pref_loss` loss and the rewards/logps metrics of every pair, from the
 *   policy's (and the reference's) log-probabilities summed over the SP group, as means over pairs.
 * Collectives: one SP all-reduce per batch (the members of an SP group hold the same items, so
 * they issue the same count), then one world all-reduce. Under ZeRO stage 3 every forward also
 * gathers over the world, so a replica whose share is an item short forwards one item more at
 * its end and discards it (replicaBatches). Must never touch gradients or weights.
 */
import type { Model } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { addPair, carriedReference, emptySums, forwardLogps, referenceLogps, sideOf, type PreferenceItem } from './dpo.js';
import { preferencePairTerms, sigmoidLoss, type PrefLossSettings } from './preferenceLoss.js';
import { preferenceMetrics, type PreferenceOptions } from './preferenceStep.js';
import { IGNORE_INDEX, shardSequence, type PackedSequence } from './sequences.js';

export interface LmEval {
  /** mean batch loss weighted by items (NaN when no item has a supervised token) */
  loss: number;
  /** mean per-item token accuracy, when asked */
  accuracy?: number;
  /** items evaluated over the world */
  samples: number;
  /** batches of this replica */
  batches: number;
}

export interface PreferenceEval {
  loss: number;
  /** 'rewards/chosen', ..., as DPO_METRICS names them */
  metrics: Record<string, number>;
  samples: number;
  batches: number;
}

/** A batch of a replica's share: its items, the first `counted` of them its own (the rest a filler). */
export interface ReplicaBatch<T> {
  items: T[];
  counted: number;
}

/**
 * This replica's share of `items` (every dp-th), cut into batches. With `model` sharded (ZeRO
 * stage 3: each of its forwards gathers over the world) a share one item short of the largest
 * gets item 0 once more at its end, not counted, so every replica runs batches of the same sizes
 * and makes the same forwards in the same order (the policy's and a sharded reference's
 * communicators interleave alike on every rank).
 */
export function replicaBatches<T>(items: readonly T[], runtime: ParallelRuntime, batch: number, model?: Model): ReplicaBatch<T>[] {
  const mine = items.filter((_, i) => i % runtime.dp === runtime.dpRank);
  const own = mine.length;
  if (model?.shards && items.length > 0 && own < Math.ceil(items.length / runtime.dp)) mine.push(items[0]!);
  const out: ReplicaBatch<T>[] = [];
  for (let i = 0; i < mine.length; i += batch) out.push({ items: mine.slice(i, i + batch), counted: Math.max(0, Math.min(batch, own - i)) });
  return out;
}

export async function evaluateLanguageModel(model: Model, runtime: ParallelRuntime, items: readonly PackedSequence[], o: { batch: number; accuracy: boolean }): Promise<LmEval> {
  // world sums: weighted loss, weight (items of non-empty batches), accuracy sum, items with a target
  const totals = new Float64Array(4);
  const batches = replicaBatches(items, runtime, o.batch, model);
  for (const { items: b, counted } of batches) {
    const sums = await lmBatchSums(model, runtime, b, counted, o.accuracy);
    if (runtime.spRank !== 0) continue; // every SP member holds the same sums: one contributes
    if (sums[1]! > 0) {
      totals[0] += counted * (sums[0]! / sums[1]!);
      totals[1] += counted;
    }
    for (let k = 0; k < counted; k++) {
      const valid = sums[3 + 2 * k]!;
      if (valid > 0) {
        totals[2] += sums[2 + 2 * k]! / valid;
        totals[3]++;
      }
    }
  }
  await runtime.allReduceSum(totals, 'world');
  return {
    loss: totals[1]! > 0 ? totals[0]! / totals[1]! : Number.NaN,
    ...(o.accuracy ? { accuracy: totals[3]! > 0 ? totals[2]! / totals[3]! : Number.NaN } : {}),
    samples: items.length,
    batches: batches.length,
  };
}

/**
 * One batch's [loss sum, valid tokens, then per item: correct, valid] over its first `counted`
 * items (the others are forwarded and not counted), summed over the SP group.
 */
async function lmBatchSums(model: Model, runtime: ParallelRuntime, b: readonly PackedSequence[], counted: number, accuracy: boolean): Promise<Float64Array> {
  const sums = new Float64Array(2 + 2 * b.length);
  for (const [k, seq] of b.entries()) {
    const s = shardSequence(seq, runtime.sp, runtime.spRank);
    const tokenLoss = new Float32Array(s.tokens.length);
    const tokenArgmax = accuracy ? new Int32Array(s.tokens.length) : undefined;
    await model.forward({ tokens: s.tokens, labels: s.labels, positions: s.positions, docLens: s.docLens, normalizer: 1, tokenLoss, tokenArgmax });
    if (k >= counted) continue;
    for (let t = 0; t < s.labels.length; t++) {
      const label = s.labels[t]!;
      if (label === IGNORE_INDEX) continue;
      sums[0] += tokenLoss[t]!;
      sums[1]++;
      sums[3 + 2 * k]++;
      if (tokenArgmax && tokenArgmax[t] === label) sums[2 + 2 * k]++;
    }
  }
  await runtime.allReduceSum(sums, 'sp');
  return sums;
}

export async function evaluatePreference(model: Model, runtime: ParallelRuntime, pairs: readonly PreferenceItem[], o: { batch: number } & PreferenceOptions): Promise<PreferenceEval> {
  const settings: PrefLossSettings = { ...(o.loss ?? sigmoidLoss(o.beta)), beta: o.beta };
  const sums = emptySums();
  let count = 0;
  const batches = replicaBatches(pairs, runtime, o.batch, model);
  // [reference 0..n) [policy 0..n) [response tokens 0..n): partial sums, completed over the SP group
  const pairLogps = async (b: readonly PreferenceItem[]) => {
    const shards = b.flatMap((p) => [p.chosen, p.rejected]).map((seq) => shardSequence(seq, runtime.sp, runtime.spRank));
    const n = shards.length;
    const lp = new Float64Array(3 * n);
    for (let i = 0; i < n; i++) lp[2 * n + i] = shards[i]!.valid;
    await referenceLogps(o.reference, settings.kind, shards, lp, carriedReference(b.map((p) => p.reference)), runtime.spRank);
    await forwardLogps(model, shards, lp, n);
    await runtime.allReduceSum(lp, 'sp');
    return { lp, n };
  };
  for (const { items: b, counted } of batches) {
    const { lp, n } = await pairLogps(b);
    if (runtime.spRank !== 0) continue;
    for (let p = 0; p < counted; p++) addPair(sums, preferencePairTerms(settings, sideOf(lp, n, 2 * p), sideOf(lp, n, 2 * p + 1)));
    count += counted;
  }
  // world sums over pairs: the loss, then the metrics (the same names on every rank), then the count
  const metrics = preferenceMetrics(sums, settings.kind, 1);
  const names = Object.keys(metrics);
  const totals = Float64Array.of(sums.loss, ...names.map((k) => metrics[k]!), count);
  await runtime.allReduceSum(totals, 'world');
  const pairsSeen = totals[names.length + 1]!;
  const mean = (k: number) => (pairsSeen > 0 ? totals[k]! / pairsSeen : Number.NaN);
  return {
    loss: mean(0),
    metrics: Object.fromEntries(names.map((k, i) => [k, mean(i + 1)])),
    samples: pairs.length,
    batches: batches.length,
  };
}
