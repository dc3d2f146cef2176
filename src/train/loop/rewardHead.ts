/**
 * Stage rm's value head as the loop owns it: its parameters and gradients (rm.ts valueHead), the
 * AdamW over them that steps with the model's optimizer (same plan, LR and update count), the
 * step of one rank (rmStep, the loss and metrics counted once per SP group), and its files:
 * `value_head.safetensors` (LLaMA-Factory's layout: v_head.summary.weight [1, hidden],
 * v_head.summary.bias [1]) in every checkpoint and in output_dir, and its AdamW moments in
 * `value_head_optimizer.safetensors` beside it so a resume continues the head exactly.
 * The head trains in full fine-tuning and with LoRA alike. Must never step the head with a plan
 * or learning rate other than the model's.
 */
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../engine/safetensors.js';
import type { Model, TrainableSet } from '../../engine/model/index.js';
import { gradStats, type PlanEffects } from '../../engine/ops/optim.js';
import type { PolicyPlan } from '../../statecharts/trainingPolicy.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import type { PreferenceItem } from './dpo.js';
import { Optimizer, type AdamWConfig } from './Optimizer.js';
import { rmStep, valueHead } from './rm.js';
import { spansOf } from './applyPlan.js';
import { dropoutKeyOf, type StepSums } from './StepSums.js';

export const VALUE_HEAD_FILE = 'value_head.safetensors';
export const VALUE_HEAD_OPTIMIZER_FILE = 'value_head_optimizer.safetensors';

/** The metrics.jsonl names of stage rm (per-replica means over pairs). */
export const RM_METRICS = ['accuracy', 'chosen_score', 'rejected_score'] as const;

export class RewardHead {
  readonly set: TrainableSet;
  readonly optimizer: Optimizer;

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
   * AdamW on the reduced head gradients with the model's plan and LR, then clears them. The
   * plan's per-tensor operations and clipping read the head's own statistics (its tensors are
   * not among the model's).
   */
  async update(plan: PolicyPlan, lr: number): Promise<PlanEffects> {
    const stats = await gradStats(this.set.grads, spansOf(this.set));
    const fx = await this.optimizer.step(plan, stats, lr);
    this.set.grads.fill(0);
    return fx;
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
