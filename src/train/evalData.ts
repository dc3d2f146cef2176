/**
 * The held-out data of a job, as LLaMA-Factory builds it: `val_size` splits the prepared training
 * items with a seeded permutation (a share below 1, rounded up as `datasets` does, or a count),
 * `eval_dataset` prepares other datasets exactly like the training ones (one set, or one per
 * dataset with eval_on_each_dataset). Every rank computes the same split. Must never let an item
 * be both trained on and held out.
 */
import type { JobConfig } from '../config/JobConfig.js';
import { DataError } from './data/DataError.js';
import type { ItemSource } from './data/ItemSource.js';
import { prepareData, type DataConfig, type PreparedData } from './data/prepareData.js';
import { epochPermutation } from './data/rng.js';
import type { TextTokenizer } from './tokenizer/TextTokenizer.js';
import type { EvalSet } from './loop/Evaluator.js';

/** The permutation key of the split (another stream than the epochs' shuffles). */
const SPLIT_STREAM = 0x7e57;

/** Items held out by val_size: `held` (in permutation order) and `train` (original order kept). */
export function splitValidation<T>(items: ItemSource<T>, valSize: number, seed: number): { train: ItemSource<T>; held: T[] } {
  if (valSize <= 0) return { train: items, held: [] };
  const n = valSize < 1 ? Math.ceil(valSize * items.length) : Math.round(valSize);
  if (n >= items.length) {
    throw new DataError(`val_size ${valSize} holds out ${n} of the ${items.length} prepared items, leaving none to train on`, { field: 'val_size' });
  }
  const perm = epochPermutation(items.length, seed, SPLIT_STREAM);
  const held = perm.subarray(0, n);
  const isHeld = new Uint8Array(items.length);
  for (const i of held) isHeld[i] = 1;
  // the training items by index (a mapped token cache is never copied)
  const trainIdx = new Uint32Array(items.length - n);
  for (let i = 0, k = 0; i < items.length; i++) if (!isHeld[i]) trainIdx[k++] = i;
  const train: ItemSource<T> = { length: trainIdx.length, at: (i) => (i >= 0 && i < trainIdx.length ? items.at(trainIdx[i]!) : undefined) };
  return { train, held: Array.from(held, (i) => items.at(i)!) };
}

function asSet(name: string | null, p: PreparedData): EvalSet {
  if (p.kind === 'feedback') return { name, kind: 'feedback', items: p.items };
  return p.kind === 'pairs' ? { name, kind: 'preference', items: p.items } : { name, kind: 'lm', items: p.items };
}

/** The eval_dataset sets (none when eval_dataset is empty). */
export function prepareEvalDatasets(c: JobConfig, base: DataConfig, tok: TextTokenizer): EvalSet[] {
  if (c.eval_dataset.length === 0) return [];
  if (c.eval_on_each_dataset) return c.eval_dataset.map((name) => asSet(name, prepareData({ ...base, dataset: [name] }, tok)));
  return [asSet(null, prepareData({ ...base, dataset: c.eval_dataset }, tok))];
}
