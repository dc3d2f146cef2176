/**
 * The dpo step of one rank: the sigmoid preference loss over the step's pairs (dpo.ts). Every SP
 * member computes the same loss, so only SP rank 0 contributes it (and the rewards) to the world
 * sums. Must never count a pair's loss once per SP member.
 */
import type { Model } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { dpoStep, type PreferenceItem, type ReferenceModel } from './dpo.js';
import { dropoutKeyOf, type StepSums } from './StepSums.js';

export interface PreferenceOptions {
  /** pref_beta */
  beta: number;
  reference: ReferenceModel;
}

/** The pairs of optimizer step `step`; `factor` (loss scaling) multiplies loss and gradients. */
export async function preferenceStep(model: Model, runtime: ParallelRuntime, pairs: PreferenceItem[], step: number, factor: number, d: PreferenceOptions): Promise<StepSums> {
  const dropoutKey = model.lora && model.lora.dropout > 0 ? (i: number) => dropoutKeyOf(step, i) : undefined;
  const r = await dpoStep({ model, reference: d.reference, runtime, items: pairs, beta: d.beta, scale: factor, dropoutKey });
  const lead = runtime.spRank === 0 ? 1 / r.pairs : 0;
  const s = r.sums;
  return {
    lossSum: s.loss * lead,
    localTokens: r.localTokens,
    validTokens: r.valid,
    rewards: [s.rewardChosen * lead, s.rewardRejected * lead, s.accuracy * lead, (s.rewardChosen - s.rewardRejected) * lead, s.logpChosen * lead, s.logpRejected * lead],
  };
}
