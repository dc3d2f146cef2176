/**
 * One rank's contribution to an optimizer step's world sums, as the per-stage steps
 * (languageModelStep, preferenceStep) return it, and the metric names of the DPO rewards.
 */

export interface StepSums {
  lossSum: number;
  localTokens: number;
  /** supervised tokens counted once per replica */
  validTokens: number;
  /** dpo: per-replica means of rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected */
  rewards?: number[];
}

/** The metrics.jsonl names of StepSums.rewards, in order (LLaMA-Factory's). */
export const DPO_METRICS = ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected'] as const;

/** The LoRA dropout key of shard `index` of optimizer step `step` (uint32, distinct for index < 2^16). */
export function dropoutKeyOf(step: number, index: number): number {
  return ((step * 0x10000) + index) >>> 0;
}
