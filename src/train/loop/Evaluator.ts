/**
 * When and what to evaluate during a run, and how the results are named, as HF Trainer and
 * LLaMA-Factory do it: eval_strategy `steps` (every eval_steps optimizer steps; eval_steps null
 * means logging_steps, below 1 a fraction of the total steps), `epoch` (at the end of every epoch
 * and at the last step) or `no`; metrics `eval_loss`, `eval_accuracy` (compute_accuracy; rm: pairwise accuracy), for dpo
 * `eval_rewards/chosen` ... (DPO_METRICS), for kto `eval_rewards/chosen`, ..., `eval_kl` (kto.ts), one set per eval dataset with eval_on_each_dataset
 * (`eval_<name>_loss`), plus eval_runtime, eval_samples_per_second, eval_steps_per_second and epoch.
 * Every rank runs the same evaluations at the same steps (a pure function of the config and
 * the step). Must never change weights, gradients or the data order.
 */
import type { JobConfig } from '../../config/JobConfig.js';
import type { Model } from '../../engine/model/index.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import type { PreferenceItem } from './dpo.js';
import { evaluateLanguageModel, evaluatePreference } from './evaluate.js';
import { evaluateKto, type KtoItem, type KtoOptions } from './kto.js';
import type { PreferenceOptions } from './preferenceStep.js';
import type { RewardHead } from './rewardHead.js';
import { evaluateRewardModel } from './rm.js';
import type { PackedSequence } from './sequences.js';

/** One held-out set: `name` null for the single set (metrics eval_loss), else eval_<name>_loss. */
export type EvalSet =
  | { name: string | null; kind: 'lm'; items: PackedSequence[] }
  | { name: string | null; kind: 'preference'; items: PreferenceItem[] }
  | { name: string | null; kind: 'feedback'; items: KtoItem[] };

export type EvalMetrics = Record<string, number>;

export type EvalConfig = Pick<JobConfig, 'eval_strategy' | 'eval_steps' | 'logging_steps' | 'per_device_eval_batch_size' | 'compute_accuracy' | 'gradient_accumulation_steps'>;

export interface EvaluatorOptions {
  model: Model;
  runtime: ParallelRuntime;
  sets: EvalSet[];
  config: EvalConfig;
  totalSteps: number;
  /** micro-batches per epoch of one replica (for epoch boundaries and the epoch figure) */
  batchesPerEpoch: number;
  /** dpo: beta and the reference model */
  dpo?: PreferenceOptions;
  /** rm: the value head (eval_loss, eval_accuracy, eval_chosen_score, eval_rejected_score) */
  rm?: RewardHead;
  /** kto: its settings and reference (eval_loss, eval_rewards/chosen, ..., eval_kl) */
  kto?: KtoOptions;
  now?: () => number;
}

/** eval_steps as a whole number of steps (HF: null -> logging_steps; < 1 -> ceil(fraction x total)). */
export function evalEverySteps(c: Pick<JobConfig, 'eval_steps' | 'logging_steps'>, totalSteps: number): number {
  const e = c.eval_steps ?? c.logging_steps;
  return e < 1 ? Math.max(1, Math.ceil(e * totalSteps)) : Math.round(e);
}

export class Evaluator {
  private readonly every: number;
  private readonly now: () => number;
  /** the step and metrics of the latest evaluation */
  last: { step: number; metrics: EvalMetrics } | null = null;

  constructor(private readonly o: EvaluatorOptions) {
    this.every = evalEverySteps(o.config, o.totalSteps);
    this.now = o.now ?? (() => performance.now());
  }

  /** Epochs done after optimizer step `step` (HF's fractional epoch). */
  epochAt(step: number): number {
    return (step * this.o.config.gradient_accumulation_steps) / this.o.batchesPerEpoch;
  }

  /** Whether the schedule evaluates after optimizer step `step`. */
  due(step: number): boolean {
    if (this.o.sets.length === 0) return false;
    switch (this.o.config.eval_strategy) {
      case 'no':
        return false;
      case 'steps':
        return step % this.every === 0;
      case 'epoch':
        return step === this.o.totalSteps || Math.floor(this.epochAt(step)) > Math.floor(this.epochAt(step - 1));
    }
  }

  /** Evaluates every set with the current weights; the metrics of step `step`. */
  async run(step: number): Promise<EvalMetrics> {
    const { model, runtime, config: c } = this.o;
    const t0 = this.now();
    const out: EvalMetrics = {};
    let samples = 0;
    let batches = 0;
    for (const set of this.o.sets) {
      const key = (m: string) => (set.name === null ? `eval_${m}` : `eval_${set.name}_${m}`);
      if (set.kind === 'lm') {
        const r = await evaluateLanguageModel(model, runtime, set.items, { batch: c.per_device_eval_batch_size, accuracy: c.compute_accuracy });
        out[key('loss')] = r.loss;
        if (r.accuracy !== undefined) out[key('accuracy')] = r.accuracy;
        samples += r.samples;
        batches += r.batches;
      } else if (set.kind === 'feedback') {
        if (!this.o.kto) throw Object.assign(new Error('KTO evaluation needs the KTO settings'), { code: 'ERR_STATE' });
        const r = await evaluateKto(model, runtime, set.items, { ...this.o.kto, batch: c.per_device_eval_batch_size });
        out[key('loss')] = r.loss;
        for (const [k, v] of Object.entries(r.metrics)) out[key(k)] = v;
        samples += r.samples;
        batches += r.batches;
      } else {
        const dpo = this.o.dpo;
        const rm = this.o.rm;
        const r = rm
          ? await evaluateRewardModel(model, rm.set, runtime, set.items, c.per_device_eval_batch_size)
          : dpo
            ? await evaluatePreference(model, runtime, set.items, { batch: c.per_device_eval_batch_size, ...dpo })
            : null;
        if (!r) throw Object.assign(new Error('preference evaluation needs the DPO settings or the value head'), { code: 'ERR_STATE' });
        out[key('loss')] = r.loss;
        for (const [k, v] of Object.entries(r.metrics)) out[key(k)] = v;
        samples += r.samples;
        batches += r.batches;
      }
    }
    const runtimeS = (this.now() - t0) / 1000;
    out.eval_runtime = Number(runtimeS.toFixed(4));
    out.eval_samples_per_second = Number((samples / Math.max(runtimeS, 1e-9)).toFixed(3));
    out.eval_steps_per_second = Number((batches / Math.max(runtimeS, 1e-9)).toFixed(3));
    out.epoch = this.epochAt(step);
    this.last = { step, metrics: out };
    return out;
  }
}
