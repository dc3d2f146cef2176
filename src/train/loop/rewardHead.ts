/**
 * Stage rm's value head as the loop owns it: its parameters and gradients (rm.ts valueHead), the
 * AdamW over them that steps with the model's optimizer (same plan, LR and update count), the
 * step of one rank (rmStep, the loss and metrics counted once per SP group), and its files:
 * `value_head.safetensors` (LLaMA-Factory's layout: v_head.summary.weight [1, hidden],
 * v_head.summary.bias [1]) in every checkpoint and in output_dir, and its AdamW moments in
 * `value_head_optimizer.safetensors` beside it so a resume continues the head exactly.
 * The head trains in full fine-tuning and with LoRA alike. The gradient policy sees the model's
 * trainable tensors and the head's as one gradient (jointStats), and the clip uses one global L2
 * norm over both (updateWithModel). Must never step the head with a plan, learning rate or clip
 * factor other than the model's.
 */
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../engine/safetensors.js';
import type { Model, ParamView, TrainableSet } from '../../engine/model/index.js';
import type { GradStats, PlanEffects } from '../../engine/ops/optim.js';
import type { PolicyPlan } from '../../statecharts/trainingPolicy.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import type { PreferenceItem } from './dpo.js';
import { Optimizer, type AdamWConfig } from './Optimizer.js';
import { rmStep, valueHead } from './rm.js';
import { dropoutKeyOf, type StepSums } from './StepSums.js';

export const VALUE_HEAD_FILE = 'value_head.safetensors';
export const VALUE_HEAD_OPTIMIZER_FILE = 'value_head_optimizer.safetensors';

/** The metrics.jsonl names of stage rm (per-replica means over pairs). */
export const RM_METRICS = ['accuracy', 'chosen_score', 'rejected_score'] as const;

/**
 * The statistics of two gradients taken as one (their tensors in order): the L2 norm over both,
 * the largest |g|, the non-finite count, the per-tensor means, and grad_mean over every non-empty
 * tensor of both. `aTensors`/`bTensors`: the tensors' element counts.
 */
export function jointStats(a: GradStats, aTensors: readonly number[], b: GradStats, bTensors: readonly number[]): GradStats {
  const perTensorMeanAbs = Float64Array.of(...a.perTensorMeanAbs, ...b.perTensorMeanAbs);
  const sizes = [...aTensors, ...bTensors];
  let sum = 0, counted = 0;
  for (const [t, n] of sizes.entries()) if (n > 0) { sum += perTensorMeanAbs[t]!; counted++; }
  return {
    gradMean: counted > 0 ? sum / counted : 0,
    l2Norm: Math.hypot(a.l2Norm, b.l2Norm),
    maxAbs: Math.max(a.maxAbs, b.maxAbs),
    nonfinite: a.nonfinite + b.nonfinite,
    perTensorMeanAbs,
  };
}

/** Both update's effects: the model's and the head's (the same clip factor and norm). */
export interface JointEffects {
  model: PlanEffects;
  head: PlanEffects;
}

export class RewardHead {
  readonly set: TrainableSet;
  readonly optimizer: Optimizer;
  /** the statistics of the model's and the head's reduced gradients of this step (jointStats) */
  private parts: { model: GradStats; head: GradStats } | null = null;

  /**
   * A head of `hidden` inputs initialised as TRL's ValueHead (a torch Linear: uniform in
   * ±1/sqrt(hidden), keyed by `seed` so every rank draws the same head).
   */
  constructor(hidden: number, seed: number, config: AdamWConfig) {
    let s = (seed ^ 0x5f3759df) >>> 0;
    const bound = 1 / Math.sqrt(hidden);
    const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 * bound - bound;
    this.set = valueHead(hidden, { weight: Float32Array.from({ length: hidden }, next), bias: next() });
    this.optimizer = new Optimizer(this.set, config);
  }

  /** The rm forward/backward of optimizer step `step` on this rank, as the loop's StepSums. */
  async step(model: Model, runtime: ParallelRuntime, pairs: PreferenceItem[], step: number, factor: number): Promise<StepSums> {
    const dropoutKey = model.lora && model.lora.dropout > 0 ? (i: number) => dropoutKeyOf(step, i) : undefined;
    const r = await rmStep({ model, head: this.set, runtime, items: pairs, scale: factor, dropoutKey });
    // every SP member computes the same loss: SP rank 0 alone contributes it to the world sums
    const lead = runtime.spRank === 0 ? 1 / r.pairs : 0;
    return {
      lossSum: r.sums.loss * lead,
      localTokens: r.localTokens,
      validTokens: 0,
      metrics: { accuracy: r.sums.accuracy * lead, chosen_score: r.sums.chosenScore * lead, rejected_score: r.sums.rejectedScore * lead },
    };
  }

  /**
   * The statistics the gradient policy judges for stage rm: the model's trainable tensors (their
   * reduced statistics as the model's optimizer gives them, `optimizer.gradStats()`: global under
   * ZeRO 2 and 3 as well; `views` the tensors) and the head's (reduced) as one gradient; kept for
   * updateWithModel.
   */
  async jointStats(model: GradStats, views: readonly ParamView[]): Promise<GradStats> {
    const head = await this.optimizer.gradStats();
    this.parts = { model, head };
    return jointStats(model, views.map((v) => v.numel), head, this.set.views.map((v) => v.numel));
  }

  /**
   * The model's update (its `optimizer`) and the head's with the same plan and LR
   * and one global clip: first the plan's other operations on each set (noise, scaling judged on
   * each tensor's own mean |g|, centralization), then the L2 norm over both sets after them, the
   * clip factor from that norm and AdamW, each set by its own optimizer. Clears the head's
   * gradients. Needs this step's jointStats first.
   */
  async updateWithModel(optimizer: Optimizer, plan: PolicyPlan, lr: number): Promise<JointEffects> {
    const parts = this.parts;
    if (!parts) throw Object.assign(new Error('RewardHead.updateWithModel before jointStats'), { code: 'ERR_STATE' });
    this.parts = null;
    // each through its optimizer (the model's: on this rank's part of the gradient under ZeRO 2 and 3)
    const fm = await optimizer.applyOperations(plan, parts.model);
    const fh = await this.optimizer.applyOperations(plan, parts.head);
    const changed = (f: PlanEffects) => f.noised + f.scaled + f.centralized > 0;
    // unchanged gradients keep the reduced norms the policy saw (the effects are every rank's
    // alike, so either every rank runs the collective of a partitioned gradStats or none)
    const nm = changed(fm) ? (await optimizer.gradStats()).l2Norm : parts.model.l2Norm;
    const nh = changed(fh) ? (await this.optimizer.gradStats()).l2Norm : parts.head.l2Norm;
    const norm = Math.hypot(nm, nh);
    // the operations are done: the second pass clips by the global norm and steps AdamW
    const clipOnly: PolicyPlan = { ...plan, noiseStd: 0, scaleFactor: 1, centralize: 'none' };
    const merge = (a: PlanEffects, b: PlanEffects): PlanEffects => ({ ...b, noised: a.noised, scaled: a.scaled, centralized: a.centralized });
    const model = merge(fm, await optimizer.step(clipOnly, { ...parts.model, l2Norm: norm }, lr));
    const head = merge(fh, await this.optimizer.step(clipOnly, { ...parts.head, l2Norm: norm }, lr));
    this.set.grads.fill(0);
    return { model, head };
  }

  private tensors(data: Float32Array, suffix = ''): { name: string; shape: number[]; data: Float32Array }[] {
    return this.set.views.map((v) => ({ name: v.name + suffix, shape: v.shape, data: data.subarray(v.offset, v.offset + v.numel) }));
  }

  /** Writes value_head.safetensors (and, for checkpoints, the head's moments) into `dir`. */
  async save(dir: string, withOptimizer: boolean): Promise<void> {
    await writeSafetensors(join(dir, VALUE_HEAD_FILE), this.tensors(this.set.params), { format: 'pt' });
    if (withOptimizer)
      await writeSafetensors(join(dir, VALUE_HEAD_OPTIMIZER_FILE), [...this.tensors(this.optimizer.m, '.exp_avg'), ...this.tensors(this.optimizer.v, '.exp_avg_sq')], { optimizer: 'adamw', adam_step: String(this.optimizer.adamStep) });
  }

  /** Reads the head (and its moments) back from a checkpoint directory written by save. */
  async load(dir: string): Promise<void> {
    const read = async (file: string) => (await readSafetensors(join(dir, file))).tensors;
    const put = (tensors: Map<string, { data: Float32Array }>, into: Float32Array, suffix: string) => {
      for (const v of this.set.views) {
        const t = tensors.get(v.name + suffix);
        if (!t || t.data.length !== v.numel) throw Object.assign(new Error(`${join(dir, VALUE_HEAD_FILE)}: ${v.name + suffix} is missing or not [${v.shape.join(', ')}]`), { code: 'ERR_CHECKPOINT' });
        into.set(t.data, v.offset);
      }
    };
    put(await read(VALUE_HEAD_FILE), this.set.params, '');
    const { tensors, metadata } = await readSafetensors(join(dir, VALUE_HEAD_OPTIMIZER_FILE));
    put(tensors, this.optimizer.m, '.exp_avg');
    put(tensors, this.optimizer.v, '.exp_avg_sq');
    this.optimizer.restore(Number(metadata.adam_step));
  }
}
