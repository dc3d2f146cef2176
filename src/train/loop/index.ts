/** The training loop and its parts. Re-exports only. */
export { Trainer, PolicyEscalation, weightsHash, type TrainConfig, type TrainerHooks, type TrainerOptions, type TrainResult, type StepInfo } from './Trainer.js';
export { applyPlan, centralizes, decays, spansOf, type PlanEffects } from './applyPlan.js';
export { shardSequence, IGNORE_INDEX, type PackedSequence, type SequenceShard, type TrainData } from './sequences.js';
export { parseLossScale, lossScaleAt, type LossScaleRange } from './lossScale.js';
export { replicaData } from './replicaData.js';
export { evaluateRecall, type RecallEval } from './evaluateRecall.js';
