/**
 * The gradient policy's plan (REFERENCE §5) in the terms of the engine's fused optimizer step:
 * which tensors are centralized and decayed, the span table over a trainable set, and the plan's
 * numbers. The operations run natively in a fixed order: seeded noise per tensor (keyed by seed,
 * step and tensor index), scaling of tensors whose mean |g| was below the threshold, gradient
 * centralization, then clipping by the global L2 norm recomputed after those changes. Every
 * replica holds the same reduced gradients and the same plan, so every replica ends with the same
 * bits. Must never draw unkeyed randomness or judge anything from local, unreduced gradients.
 */
import type { ParamView, TrainableSet } from '../../engine/model/index.js';
import { optimizerStep, SpanTable, type GradSpan, type GradStats, type PlanEffects, type StepPlan } from '../../engine/ops/optim.js';
import type { CentralizeScope } from '../../statecharts/policyConfig.js';
import type { PolicyPlan } from '../../statecharts/trainingPolicy.js';

export type { PlanEffects };

const LINEAR = /(^|\.)(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$/;

/**
 * Whether gradient centralization applies to tensor `v` under `scope`. LoRA factors
 * (`...q_proj.lora_A.weight`) are not linear-layer weights: only `all` centralizes them (removing
 * the row mean of B's r columns would constrain the low-rank update itself).
 */
export function centralizes(v: ParamView, scope: CentralizeScope): boolean {
  if (scope === 'none' || v.shape.length !== 2) return false;
  if (scope === 'all') return true;
  return LINEAR.test(v.name) || v.name === 'lm_head.weight';
}

/** No weight decay on norms and biases (as HF Trainer's parameter groups). */
export function decays(v: ParamView): boolean {
  return !(v.name.endsWith('.bias') || /norm/.test(v.name));
}

/** Gradient spans of a trainable set (a Model is one: its whole parameter set). */
export function spansOf(set: Pick<TrainableSet, 'views'>): GradSpan[] {
  return set.views.map((v) => ({ offset: v.offset, numel: v.numel }));
}

/** The fused step's spans of `views` under centralization `scope`; tensor i's noise is keyed by i. */
export function spanTableOf(views: readonly ParamView[], scope: CentralizeScope): SpanTable {
  return new SpanTable(
    views.map((v, i) => ({
      offset: v.offset,
      numel: v.numel,
      centralize: centralizes(v, scope) ? [v.shape[0]!, v.shape[1]!] as const : null,
      decay: decays(v),
      noiseTensor: i,
    })),
  );
}

/** The fused step's operations for `plan`, judged on the reduced `stats` it was made from. */
export function stepPlanOf(plan: PolicyPlan, stats: GradStats): StepPlan {
  return {
    noiseStd: plan.noiseStd,
    noiseSeed: plan.noiseSeed,
    noiseStep: plan.step,
    scaleFactor: plan.scaleFactor,
    scaleThreshold: plan.scaleThreshold,
    clipNorm: plan.clipNorm,
    stats,
  };
}

/**
 * Mutates `set.grads` according to `plan` (`set`: model.trainable, i.e. the LoRA adapters when
 * attached, or a Model), in one native call; `stats` are the reduced statistics the plan was made
 * from. The Optimizer does the same and the AdamW update in that call.
 */
export async function applyPlan(set: Pick<TrainableSet, 'grads' | 'views'>, plan: PolicyPlan, stats: GradStats): Promise<PlanEffects> {
  return optimizerStep(set.grads, spanTableOf(set.views, plan.centralize), stepPlanOf(plan, stats));
}
