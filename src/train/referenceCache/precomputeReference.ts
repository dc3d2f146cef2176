/**
 * precompute_ref_log_probs (TRL's key): before training, the reference (the initial model, or
 * the base with its adapters off) scores every training and evaluation example once, and the
 * items then carry those sums (PreferenceItem.reference, KtoItem.reference), so no reference
 * model stays resident. The sums are the bits the step's own reference pass would compute
 * (scoreReference.ts). Rank 0 looks the key up in the cache (referenceCacheFile.ts) and
 * broadcasts whether it found it, then the values; on a miss every rank scores and rank 0
 * writes the file. Must run before any weight changes (a resume's checkpoint is restored later)
 * and must never let ranks disagree on the values.
 */
import type { Model } from '../../engine/model/index.js';
import type { ItemSource } from '../data/ItemSource.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import type { ReferenceModel, PreferenceItem, ScoredReference } from '../loop/dpo.js';
import type { EvalSet } from '../loop/Evaluator.js';
import type { KtoItem } from '../loop/kto.js';
import { readReferenceCache, referenceCachePath, referenceKey, writeReferenceCache } from './referenceCacheFile.js';
import { scoreReference, type ScoredSet } from './scoreReference.js';

export interface PreferenceData {
  pairs?: ItemSource<PreferenceItem>;
  feedback?: ItemSource<KtoItem>;
  evalSets: EvalSet[];
}

export interface PrecomputeOptions {
  /** the policy model before training; with `lora`, scored with its adapters off */
  model: Model;
  lora: boolean;
  runtime: ParallelRuntime;
  data: PreferenceData;
  outputDir: string;
  /** overwrite_cache: score again even when the cache holds the key */
  overwrite: boolean;
  bf16: boolean;
  device: string | null;
  /** progress lines (rank 0 only calls it) */
  info(message: string): void;
}

const pairSeqs = (p: PreferenceItem) => [p.chosen, p.rejected] as const;
const ktoSeqs = (k: KtoItem) => [k.target, k.kl] as const;

function withScores<T extends { reference?: ScoredReference }>(items: ItemSource<T>, v: Float64Array, at: number): ItemSource<T> {
  return {
    length: items.length,
    at(i) {
      const it = items.at(i);
      return it && { ...it, reference: [v[at + 2 * i]!, v[at + 2 * i + 1]!] as const };
    },
  };
}

const arrayOf = <T>(s: ItemSource<T>): T[] => Array.from({ length: s.length }, (_, i) => s.at(i)!);

/** The data with every preference / KTO item carrying its reference sums. */
export async function precomputeReference(o: PrecomputeOptions): Promise<PreferenceData> {
  const { runtime, data } = o;
  const stage = data.feedback ? 'kto' : 'dpo';
  const train = data.feedback ?? data.pairs;
  if (!train) throw Object.assign(new Error('precompute_ref_log_probs needs preference pairs or KTO examples'), { code: 'ERR_STATE' });
  // the training items first, then the held-out sets of the stage's kind, in order
  const scoresSet = (e: EvalSet) => (stage === 'kto' ? e.kind === 'feedback' : e.kind === 'preference');
  const sets: ScoredSet<unknown>[] = [data.feedback ? { items: data.feedback, sequences: ktoSeqs } : { items: data.pairs!, sequences: pairSeqs }];
  for (const e of data.evalSets) {
    if (e.kind === 'feedback' && scoresSet(e)) sets.push({ items: e.items, sequences: ktoSeqs });
    else if (e.kind === 'preference' && scoresSet(e)) sets.push({ items: e.items, sequences: pairSeqs });
  }
  const count = 2 * sets.reduce((a, s) => a + s.items.length, 0);
  const reference: ReferenceModel = o.lora ? { model: o.model, enter: () => o.model.setAdaptersEnabled(false), exit: () => o.model.setAdaptersEnabled(true) } : { model: o.model };

  let values: Float64Array | null = null;
  let key = '';
  const found = Int32Array.of(0);
  if (runtime.rank === 0) {
    key = referenceKey({ stage, sp: runtime.sp, bf16: o.bf16, device: o.device, model: o.model, sets });
    values = o.overwrite ? null : readReferenceCache(referenceCachePath(o.outputDir, key), key, count);
    found[0] = values ? 1 : 0;
  }
  await runtime.broadcast(found, 'world', 0);
  const path = runtime.rank === 0 ? referenceCachePath(o.outputDir, key) : '';
  if (found[0] === 1) {
    values ??= new Float64Array(count);
    await runtime.broadcast(values, 'world', 0);
    if (runtime.rank === 0) o.info(`precompute_ref_log_probs: the reference log-probs of ${count} sequences read from ${path}`);
  } else {
    values = new Float64Array(count);
    const started = Date.now();
    await scoreReference(reference, runtime, sets, values);
    if (runtime.rank === 0) {
      writeReferenceCache(path, key, values);
      o.info(`precompute_ref_log_probs: scored ${count} sequences with the reference in ${((Date.now() - started) / 1000).toFixed(1)} s, cached in ${path}`);
    }
  }
  let at = 2 * train.length;
  const next = (n: number) => ((at += 2 * n), at - 2 * n);
  const evalSets = data.evalSets.map((e): EvalSet => {
    if (e.kind === 'feedback' && scoresSet(e)) return { ...e, items: arrayOf(withScores(e.items, values, next(e.items.length))) };
    if (e.kind === 'preference' && scoresSet(e)) return { ...e, items: arrayOf(withScores(e.items, values, next(e.items.length))) };
    return e;
  });
  return data.feedback ? { feedback: withScores(data.feedback, values, 0), evalSets } : { pairs: withScores(data.pairs!, values, 0), evalSets };
}
