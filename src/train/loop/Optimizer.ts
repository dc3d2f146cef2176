/**
 * AdamW over a trainable set with the gradient policy's plan applied first: owns the first and
 * second moments (flat like the parameters) and the count of updates applied (bias correction),
 * which checkpoints save and a resume restores. One optimizer step is one native call over every
 * tensor (the plan's operations, then AdamW with weight decay except on norms and biases), bitwise
 * what the per-tensor calls give. Must never update with a plan made from other statistics than
 * the reduced ones of these gradients.
 */
import type { TrainableSet } from '../../engine/model/index.js';
import { optimizerStep, type GradStats, type PlanEffects, type SpanTable } from '../../engine/ops/optim.js';
import type { CentralizeScope } from '../../statecharts/policyConfig.js';
import type { PolicyPlan } from '../../statecharts/trainingPolicy.js';
import { spanTableOf, stepPlanOf } from './applyPlan.js';

/** AdamW's hyper-parameters (job keys; the LR comes per step). */
export interface AdamWConfig {
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
}

export class Optimizer {
  /** AdamW first moments, flat like the trainable parameters. */
  readonly m: Float32Array;
  /** AdamW second moments. */
  readonly v: Float32Array;
  private updates = 0;
  /** span tables by centralization scope (the policy's scope is fixed per run; built once) */
  private readonly tables = new Map<CentralizeScope, SpanTable>();

  /** `set` is what gets updated: attach LoRA before constructing the optimizer. */
  constructor(private readonly set: TrainableSet, private readonly config: AdamWConfig) {
    this.m = new Float32Array(set.params.length);
    this.v = new Float32Array(set.params.length);
  }

  /** AdamW updates applied so far (below the optimizer step when updates were skipped). */
  get adamStep(): number {
    return this.updates;
  }

  /** After a checkpoint's moments were read into m and v: the update count it recorded. */
  restore(adamStep: number): void {
    if (!Number.isInteger(adamStep) || adamStep < 0) throw new Error(`adam_step must be a non-negative integer, got ${adamStep}`);
    this.updates = adamStep;
  }

  /** Applies `plan` (made from `stats`) to the reduced gradients, then AdamW with `lr`, in one native call. */
  async step(plan: PolicyPlan, stats: GradStats, lr: number): Promise<PlanEffects> {
    const { set, config: c } = this;
    let table = this.tables.get(plan.centralize);
    if (!table) {
      table = spanTableOf(set.views, plan.centralize);
      this.tables.set(plan.centralize, table);
    }
    const step = this.updates + 1;
    const fx = await optimizerStep(set.grads, table, stepPlanOf(plan, stats), {
      params: set.params, m: this.m, v: this.v,
      lr, beta1: c.adam_beta1, beta2: c.adam_beta2, eps: c.adam_epsilon, weightDecay: c.weight_decay, step,
    });
    this.updates = step;
    set.updated?.();  // e.g. the bf16 weight copy of a bf16 model
    return fx;
  }
}
