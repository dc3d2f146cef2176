/**
 * The dpo step of one rank: the preference loss (`pref_loss`) over the step's pairs (dpo.ts).
 * Every SP member computes the same loss, so only SP rank 0 contributes it (and the rewards) to
 * the world sums. Must never count a pair's loss once per SP member.
 */
import type { Model } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { dpoStep, type DpoSums, type PreferenceItem, type ReferenceModel } from './dpo.js';
import type { PrefLossSettings } from './preferenceLoss.js';
import { dropoutKeyOf, type StepSums } from './StepSums.js';

export interface PreferenceOptions {
  /** pref_beta */
  beta: number;
  /** pref_loss and its extras (absent: the plain sigmoid loss) */
  loss?: Omit<PrefLossSettings, 'beta'>;
  /** absent for the reference-free losses (orpo, simpo) */
  reference?: ReferenceModel;
}

/** The metrics.jsonl rows of a replica's pair sums, divided by `div` (its pairs; 0 on SP ranks > 0). */
export function preferenceMetrics(s: DpoSums, kind: PrefLossSettings['kind'], div: number): Record<string, number> {
  const m: Record<string, number> = {
    'rewards/chosen': s.rewardChosen * div,
    'rewards/rejected': s.rewardRejected * div,
    'rewards/accuracies': s.accuracy * div,
    'rewards/margins': (s.rewardChosen - s.rewardRejected) * div,
    'logps/chosen': s.logpChosen * div,
    'logps/rejected': s.logpRejected * div,
  };
  if (kind === 'orpo') Object.assign(m, { sft_loss: s.sftLoss * div, odds_ratio_loss: s.oddsRatioLoss * div });
  return m;
}

/** The pairs of optimizer step `step`; `factor` (loss scaling) multiplies loss and gradients. */
export async function preferenceStep(model: Model, runtime: ParallelRuntime, pairs: PreferenceItem[], step: number, factor: number, d: PreferenceOptions): Promise<StepSums> {
  const dropoutKey = model.lora && model.lora.dropout > 0 ? (i: number) => dropoutKeyOf(step, i) : undefined;
  const r = await dpoStep({ model, reference: d.reference, runtime, items: pairs, beta: d.beta, loss: d.loss, scale: factor, dropoutKey });
  const lead = runtime.spRank === 0 ? 1 / r.pairs : 0;
  return {
    lossSum: r.sums.loss * lead,
    localTokens: r.localTokens,
    validTokens: r.valid,
    metrics: preferenceMetrics(r.sums, d.loss?.kind ?? 'sigmoid', lead),
  };
}
