/**
 * The pt/sft step of one rank: every shard forward and backward, the loss normalized by the
 * step's supervised tokens over the SP group (one SP all-reduce, agreed before the first forward).
 * Must never normalize by a local, unreduced token count.
 */
import type { Model } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { shardSequence, type PackedSequence, type SequenceShard } from './sequences.js';
import { dropoutKeyOf, type StepSums } from './StepSums.js';

/**
 * Forward and backward over this rank's shards of `seqs` for optimizer step `step`; `factor`
 * (loss scaling) divides the normalizer, so loss and gradients come out times factor. Returns this
 * rank's partial loss sum.
 */
export async function languageModelStep(model: Model, runtime: ParallelRuntime, seqs: PackedSequence[], step: number, factor: number): Promise<StepSums> {
  const shards: SequenceShard[] = seqs.map((s) => shardSequence(s, runtime.sp, runtime.spRank));
  const count = Float64Array.of(shards.reduce((a, s) => a + s.valid, 0));
  await runtime.allReduceSum(count, 'sp');
  const normalizer = Math.max(1, count[0]!) / factor;
  let lossSum = 0;
  let localTokens = 0;
  for (const [i, s] of shards.entries()) {
    // LoRA dropout masks keyed by (step, shard index): a resumed run draws the same ones
    const dropoutKey = model.lora && model.lora.dropout > 0 ? dropoutKeyOf(step, i) : undefined;
    const r = await model.forward({ tokens: s.tokens, labels: s.labels, positions: s.positions, docLens: s.docLens, normalizer, dropoutKey });
    await model.backward();
    lossSum += r.loss / factor;
    localTokens += s.tokens.length - s.padding;
  }
  return { lossSum, localTokens, validTokens: runtime.spRank === 0 ? count[0]! : 0 };
}
