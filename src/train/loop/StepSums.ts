/**
 * One rank's contribution to an optimizer step's world sums, as the per-stage steps
 * (languageModelStep, preferenceStep) return it, and the metric names of the DPO rewards.
 */

export interface StepSums {
  lossSum: number;
  localTokens: number;
  /** supervised tokens counted once per replica */
  validTokens: number;
  /**
   * per-replica means of the stage's metrics (dpo: DPO_METRICS, and ORPO's parts), by their
   * metrics.jsonl names; every rank of a job returns the same names in the same order
   */
  metrics?: Record<string, number>;
}

/** The metrics.jsonl names of the preference rewards (LLaMA-Factory's). */
export const DPO_METRICS = ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected'] as const;

/** The LoRA dropout key of shard `index` of optimizer step `step` (uint32, distinct for index < 2^16). */
export function dropoutKeyOf(step: number, index: number): number {
  return ((step * 0x10000) + index) >>> 0;
}
