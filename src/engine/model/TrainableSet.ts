/**
 * What an optimizer updates: flat parameter and gradient buffers with their named views (the
 * whole model, or only the LoRA adapters once they are attached). A type only.
 */
import type { ParamView } from '../nativeBinding.js';

export interface TrainableSet {
  params: Float32Array;
  grads: Float32Array;
  views: readonly ParamView[];
  /**
   * Whoever writes `params` in place (the optimizer step) calls this afterwards, so copies derived
   * from them (the bf16 weights of a bf16 model) are refreshed before the next forward. Absent
   * when nothing derives from them (LoRA adapters compute from their fp32 values directly).
   */
  updated?(): void;
}
