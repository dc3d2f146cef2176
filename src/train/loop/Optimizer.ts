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
 * elementwise kernel, and an all-gather of the packed parts (bucket by bucket) gives every rank
 * the updated parameters: the same bits as stage 0.
 * Stage 2: the gradients too (zero/shardedGradients.ts): reduceGradients() reduce-scatters them
 * so this rank holds only its part reduced, gradStats() combines the parts' partial sums, the
 * plan runs on the part; then AdamW and the all-gather as in stage 1. The weights equal stage 0's
 * up to the summation order of the reduction and the statistics.
 * Stage 3: the parameters too (zero/shardModel.ts): `set` is the model's packed part of the
 * parameters and gradients (Model.shards), the backward already reduce-scattered each layer's
 * gradient (its world sum) into it, so reduceGradients() only divides by the replicas; statistics and plan as in
 * stage 2 on the packed part, AdamW on it, and no all-gather: the model gathers each layer when
 * it needs it.
 */
import type { TrainableSet } from '../../engine/model/index.js';
import { adamwStep, gradStats, optimizerStep, type GradStats, type PlanEffects, type SpanTable } from '../../engine/ops/optim.js';
import type { CentralizeScope } from '../../statecharts/policyConfig.js';
import type { PolicyPlan } from '../../statecharts/trainingPolicy.js';
import { Partition, type PartSegment } from '../zero/partition.js';
import { bucketBuffers, gatherParts, partitionedStats, planOnPart, reduceScatterGradients, type BucketBuffers } from '../zero/shardedGradients.js';
import type { ZeroGroup } from '../zero/ZeroGroup.js';
import { applyPlan, decays, spanTableOf, spansOf, stepPlanOf } from './applyPlan.js';

/** AdamW's hyper-parameters (job keys; the LR comes per step). */
export interface AdamWConfig {
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
}

export type { ZeroGroup };

interface Shard {
  group: ZeroGroup;
  partition: Partition;
  segments: readonly PartSegment[];
  decay: boolean[];
  /** the bucketed collectives' buffers */
  bufs: BucketBuffers;
  /** stage 2: the gradients are partitioned */
  grads: boolean;
  /** stage 3: `set` holds this rank's packed part only (packed offsets for parameters and gradients) */
  packed: boolean;
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
      const packed = zero.stage >= 3;
      if (packed && (set.params.length !== partition.partLength || set.grads.length !== partition.partLength))
        throw new Error(`Optimizer: ZeRO stage 3 updates this rank's packed part (${partition.partLength} elements), got buffers of ${set.params.length} and ${set.grads.length}: shard the model first (zero/shardModel.ts)`);
      this.shard = { group: zero, partition, segments: partition.segments(zero.rank), decay: set.views.map(decays), bufs: packed ? { buckets: [], all: new Float32Array(0), one: new Float32Array(0) } : bucketBuffers(partition), grads: zero.stage >= 2, packed };
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

  /** Whether the gradients are partitioned (stage 2): reduceGradients() replaces the runtime's all-reduce. */
  get shardsGradients(): boolean {
    return this.zeroStage >= 2;
  }

  /**
   * Stage 2: the reduce-scatter of the backward's gradients over the world (a collective); this
   * rank's part of `set.grads` then holds the reduced values, the rest is stale.
   */
  async reduceGradients(): Promise<void> {
    const sh = this.shard;
    if (!sh || !sh.grads) throw new Error('Optimizer.reduceGradients: the gradients are not partitioned (zero_stage < 2): reduce them with the runtime');
    if (sh.packed) {
      // stage 3: the backward reduce-scattered every layer's world SUM into the part; the MEAN over
      // the replicas once per step, the quotient rounded by the Float32Array store as in stage 2
      const g = this.set.grads;
      const dp = sh.group.dp;
      if (dp > 1) for (let i = 0; i < g.length; i++) g[i] = g[i]! / dp;
      return;
    }
    await reduceScatterGradients(this.set.grads, sh.partition, sh.group, sh.bufs);
  }

  /** The statistics of the reduced gradients (stage 2: a collective combining every rank's part). */
  async gradStats(): Promise<GradStats> {
    const sh = this.shard;
    if (sh?.grads) return partitionedStats(this.set.grads, this.set.views, sh.partition, sh.group, sh.packed);
    return gradStats(this.set.grads, spansOf(this.set));
  }

  /**
   * The plan's operations but the clip (noise, scaling, centralization) on the reduced gradients,
   * in place (stages 2 and 3: on this rank's part, the effects the whole step's); `stats` are the
   * statistics the plan was made from. For a caller that clips by a norm of its own (stage rm's
   * joint norm) and then steps with a clip-only plan.
   */
  async applyOperations(plan: PolicyPlan, stats: GradStats): Promise<PlanEffects> {
    const op = { ...plan, clipNorm: 0 };
    const sh = this.shard;
    if (sh?.grads) return planOnPart(this.set.grads, this.set.views, sh.partition, sh.group, op, stats, sh.packed);
    return applyPlan(this.set, op, stats);
  }

  /** The gradients the plan and AdamW read: the whole reduced buffer, or under stage 3 this rank's packed part. */
  get gradients(): Float32Array {
    return this.set.grads;
  }

  /** The partition map of the moments (null: replicated). */
  get partition(): Partition | null {
    return this.shard?.partition ?? null;
  }

  /** This rank's place in the ZeRO group (0 when replicated). */
  get zeroRank(): number {
    return this.shard?.group.rank ?? 0;
  }

  /**
   * Every rank's packed moments in rank order (a collective: every rank calls it), for a
   * checkpoint whose ranks cannot each write their own part.
   */
  async gatheredParts(): Promise<{ m: Float32Array; v: Float32Array }> {
    const sh = this.shard;
    if (!sh) throw new Error('Optimizer.gatheredParts: the moments are not partitioned');
    const m = await sh.group.allGather(this.m);
    return { m, v: await sh.group.allGather(this.v) };
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
      ? await this.shardedStep(this.shard, table, plan, stats, adam)
      : await optimizerStep(set.grads, table, stepPlanOf(plan, stats), { params: set.params, m: this.m, v: this.v, weightDecay: c.weight_decay, ...adam });
    this.updates = step;
    set.updated?.();  // e.g. the bf16 weight copy of a bf16 model
    return fx;
  }

  /** Stages 1-3: the plan (on the whole gradient, or on the part), AdamW on this rank's segments, then the all-gather. */
  private async shardedStep(sh: Shard, table: SpanTable, plan: PolicyPlan, stats: GradStats, adam: { lr: number; beta1: number; beta2: number; eps: number; step: number }): Promise<PlanEffects> {
    const { set } = this;
    const fx = sh.grads
      ? await planOnPart(set.grads, set.views, sh.partition, sh.group, plan, stats, sh.packed)
      : await optimizerStep(set.grads, table, stepPlanOf(plan, stats));
    for (const s of sh.segments) {
      const o = sh.packed ? s.packed : s.offset;
      const at = (x: Float32Array) => x.subarray(o, o + s.numel);
      const part = (x: Float32Array) => x.subarray(s.packed, s.packed + s.numel);
      await adamwStep(at(set.params), part(this.m), part(this.v), at(set.grads), { ...adam, weightDecay: sh.decay[s.tensor] ? this.config.weight_decay : 0 });
    }
    if (!sh.packed) await gatherParts(set.params, sh.partition, sh.group, sh.bufs);
    return fx;
  }
}
