/**
 * What an optimizer updates: flat parameter and gradient buffers with their named views (the
 * whole model, or only the LoRA adapters once they are attached). A type only.
 */
import type { ParamView } from '../nativeBinding.js';

export interface TrainableSet {
  params: Float32Array;
  grads: Float32Array;
  views: readonly ParamView[];
}
