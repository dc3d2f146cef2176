/** The training loop and its parts. Re-exports only. */
export { Trainer, type TrainConfig, type TrainerHooks, type TrainerOptions, type TrainResult, type StepInfo } from './Trainer.js';
export { Optimizer, type AdamWConfig } from './Optimizer.js';
export { PolicyEscalation } from './PolicyEscalation.js';
export { weightsHash } from './weightsHash.js';
export { trainerState, restoreTrainer, type TrainerProgress } from './trainerState.js';
export { languageModelStep } from './languageModelStep.js';
export { preferenceStep, type PreferenceOptions } from './preferenceStep.js';
export { DPO_METRICS, dropoutKeyOf, type StepSums } from './StepSums.js';
export { applyPlan, centralizes, decays, spansOf, spanTableOf, stepPlanOf, type PlanEffects } from './applyPlan.js';
export { shardSequence, IGNORE_INDEX, type PackedSequence, type SequenceShard, type TrainData } from './sequences.js';
export { parseLossScale, lossScaleAt, type LossScaleRange } from './lossScale.js';
export { replicaData } from './replicaData.js';
export { evaluateRecall, type RecallEval } from './evaluateRecall.js';
