/**
 * Applies the gradient policy's plan (REFERENCE §5) to reduced gradients, in native code and in a
 * fixed order: seeded noise per tensor (keyed by seed, step and tensor index), scaling of tensors
 * whose mean |g| was below the threshold, gradient centralization, then clipping by the global L2
 * norm recomputed after those changes. Every replica holds the same reduced gradients and the same
 * plan, so every replica ends with the same bits. Must never draw unkeyed randomness or judge
 * anything from local, unreduced gradients.
 */
import type { ParamView, TrainableSet } from '../../engine/model/index.js';
import { addNoise, centralize, clipByGlobalNorm, gradStats, scale, type GradSpan, type GradStats } from '../../engine/ops/optim.js';
import type { CentralizeScope } from '../../statecharts/policyConfig.js';
import type { PolicyPlan } from '../../statecharts/trainingPolicy.js';

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

export interface PlanEffects {
  /** tensors that received noise */
  noised: number;
  /** tensors scaled up */
  scaled: number;
  centralized: number;
  /** the factor the clip applied (1: none) */
  clipFactor: number;
  /** global L2 norm after the changes, before the clip (the reduced norm when nothing was clipped or changed) */
  normBeforeClip: number;
}

/**
 * Mutates `set.grads` according to `plan` (`set`: model.trainable, i.e. the LoRA adapters when
 * attached, or a Model); `stats` are the reduced statistics the plan was made from.
 */
export async function applyPlan(set: Pick<TrainableSet, 'grads' | 'views'>, plan: PolicyPlan, stats: GradStats): Promise<PlanEffects> {
  const fx: PlanEffects = { noised: 0, scaled: 0, centralized: 0, clipFactor: 1, normBeforeClip: stats.l2Norm };
  const views = set.views;
  const grad = (v: ParamView) => set.grads.subarray(v.offset, v.offset + v.numel);
  let changed = false;
  if (plan.noiseStd > 0) {
    for (let i = 0; i < views.length; i++) {
      await addNoise(grad(views[i]!), plan.noiseStd, { seed: plan.noiseSeed, step: plan.step, tensor: i });
      fx.noised++;
    }
    changed = true;
  }
  if (plan.scaleFactor !== 1 && plan.scaleThreshold > 0) {
    // judged on the reduced statistics the policy saw, before the noise
    for (let i = 0; i < views.length; i++) {
      if (stats.perTensorMeanAbs[i]! < plan.scaleThreshold) {
        await scale(grad(views[i]!), plan.scaleFactor);
        fx.scaled++;
      }
    }
    changed ||= fx.scaled > 0;
  }
  for (const v of views) {
    if (!centralizes(v, plan.centralize)) continue;
    await centralize(grad(v), v.shape[0]!, v.shape[1]!);
    fx.centralized++;
    changed = true;
  }
  if (plan.clipNorm > 0) {
    if (changed) fx.normBeforeClip = (await gradStats(set.grads, spansOf(set))).l2Norm;
    fx.clipFactor = await clipByGlobalNorm(set.grads, fx.normBeforeClip, plan.clipNorm);
  }
  return fx;
}
