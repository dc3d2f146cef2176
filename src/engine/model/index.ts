/** The model of the native engine and its parts. Re-exports only. */
export { Model, type ModelOptions, type ParameterShards, type ShardLayout } from './Model.js';
export type { TrainableSet } from './TrainableSet.js';
export type { ForwardInput } from './forwardInput.js';
export type { LoraState } from './adapters.js';
export { loadHfWeights, saveHfModel, savedWeightDtype, weightFiles, weightTensors } from './hfWeights.js';
export { mergeAdapter, type MergedAdapter } from './mergeAdapter.js';
export { writeHfModel, planShards, HF_DTYPES, type HfDType, type HfExportOptions, type HfExportResult } from './hfExport.js';
export type { ForwardResult, ParamView, SequenceParallelStats } from '../nativeBinding.js';
