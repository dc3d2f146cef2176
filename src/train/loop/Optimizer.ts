/**
 * AdamW over a trainable set with the gradient policy's plan applied first: owns the first and
 * second moments (flat like the parameters) and the count of updates applied (bias correction),
 * which checkpoints save and a resume restores. One optimizer step is one native call over every
 * tensor (the plan's operations, then AdamW with weight decay except on norms and biases), bitwise
 * what the per-tensor calls give. Must never update with a plan made from other statistics than
 * the reduced ones of these gradients.
 *
 * ZeRO stage 1 (REFERENCE §8, `zero`): the moments exist only for this rank's part of every
 * tensor (zero/partition.ts). The plan runs on the whole reduced gradient exactly as in stage 0
 * (the same native call without the update), AdamW updates this rank's segments with the same
 * elementwise kernel, and one all-gather of the packed parts gives every rank the updated
 * parameters: the same bits as stage 0.
 */
import type { TrainableSet } from '../../engine/model/index.js';
import { adamwStep, optimizerStep, type GradStats, type PlanEffects, type SpanTable } from '../../engine/ops/optim.js';
import type { CentralizeScope } from '../../statecharts/policyConfig.js';
import type { PolicyPlan } from '../../statecharts/trainingPolicy.js';
import { Partition, type PartSegment } from '../zero/partition.js';
import { decays, spanTableOf, stepPlanOf } from './applyPlan.js';

/** AdamW's hyper-parameters (job keys; the LR comes per step). */
export interface AdamWConfig {
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
}

/** The sharding group of ZeRO (the whole world) as the optimizer needs it. */
export interface ZeroGroup {
  /** 0: replicated state; 1: moments partitioned */
  stage: number;
  rank: number;
  world: number;
  /** every rank's `part` concatenated in rank order (a collective: every rank calls it) */
  allGather(part: Float32Array): Promise<Float32Array>;
}

interface Shard {
  group: ZeroGroup;
  partition: Partition;
  segments: PartSegment[];
  decay: boolean[];
}

export class Optimizer {
  /** AdamW first moments: flat like the trainable parameters, or this rank's packed part under ZeRO. */
  readonly m: Float32Array;
  /** AdamW second moments (as m). */
  readonly v: Float32Array;
  private updates = 0;
  /** span tables by centralization scope (the policy's scope is fixed per run; built once) */
  private readonly tables = new Map<CentralizeScope, SpanTable>();
  private readonly shard: Shard | null;

  /** `set` is what gets updated: attach LoRA before constructing the optimizer. */
  constructor(private readonly set: TrainableSet, private readonly config: AdamWConfig, zero?: ZeroGroup) {
    if (zero && zero.stage >= 1) {
      const partition = new Partition(set.views, zero.world);
      this.shard = { group: zero, partition, segments: partition.segments(zero.rank), decay: set.views.map(decays) };
      this.m = new Float32Array(partition.partLength);
      this.v = new Float32Array(partition.partLength);
    } else {
      this.shard = null;
      this.m = new Float32Array(set.params.length);
      this.v = new Float32Array(set.params.length);
    }
  }

  /** The ZeRO stage the moments are kept in (0: replicated). */
  get zeroStage(): number {
    return this.shard ? this.shard.group.stage : 0;
  }

  /** The partition map of the moments (null: replicated). */
  get partition(): Partition | null {
    return this.shard?.partition ?? null;
  }

  /**
   * The full moments, flat like the parameters, for a checkpoint: under ZeRO a collective (every
   * rank calls it, in the same order) that gathers the parts; otherwise m and v themselves.
   */
  async consolidatedMoments(): Promise<{ m: Float32Array; v: Float32Array }> {
    const sh = this.shard;
    if (!sh) return { m: this.m, v: this.v };
    const full = async (part: Float32Array): Promise<Float32Array> => {
      const out = new Float32Array(this.set.params.length);
      sh.partition.unpackAll(await sh.group.allGather(part), out);
      return out;
    };
    const m = await full(this.m);
    return { m, v: await full(this.v) };
  }

  /** After a checkpoint's full moments were read: this rank keeps its part (re-cut for any world). */
  takeMoments(m: Float32Array, v: Float32Array): void {
    const sh = this.shard;
    if (!sh) {
      this.m.set(m);
      this.v.set(v);
      return;
    }
    sh.partition.pack(m, sh.group.rank, this.m);
    sh.partition.pack(v, sh.group.rank, this.v);
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
    const adam = { lr, beta1: c.adam_beta1, beta2: c.adam_beta2, eps: c.adam_epsilon, step };
    const fx = this.shard
      ? await this.shardedStep(this.shard, table, stepPlanOf(plan, stats), adam)
      : await optimizerStep(set.grads, table, stepPlanOf(plan, stats), { params: set.params, m: this.m, v: this.v, weightDecay: c.weight_decay, ...adam });
    this.updates = step;
    set.updated?.();  // e.g. the bf16 weight copy of a bf16 model
    return fx;
  }

  /** Stage 1: the plan on the whole gradient, AdamW on this rank's segments, then the all-gather. */
  private async shardedStep(sh: Shard, table: SpanTable, plan: ReturnType<typeof stepPlanOf>, adam: { lr: number; beta1: number; beta2: number; eps: number; step: number }): Promise<PlanEffects> {
    const { set } = this;
    const fx = await optimizerStep(set.grads, table, plan);
    for (const s of sh.segments) {
      const at = (x: Float32Array) => x.subarray(s.offset, s.offset + s.numel);
      const part = (x: Float32Array) => x.subarray(s.packed, s.packed + s.numel);
      await adamwStep(at(set.params), part(this.m), part(this.v), at(set.grads), { ...adam, weightDecay: sh.decay[s.tensor] ? this.config.weight_decay : 0 });
    }
    sh.partition.unpackAll(await sh.group.allGather(sh.partition.pack(set.params, sh.group.rank)), set.params);
    return fx;
  }
}
