/**
 * ZeRO stage 2's gradient work on this rank's part (REFERENCE §8): the reduce-scatter that leaves
 * each rank the reduced gradient of its part (SUM over the world, then / dp: SUM over SP, MEAN
 * over DP as in §2), written back in place into the backward's own buffer at the part's offsets
 * (no second gradient buffer beside it); the global statistics from the parts' partial sums
 * (gathered, combined in tensor then rank order, so every rank gets the same numbers and the
 * policy decides as in stage 0); and the plan's operations on the part (noise by the global
 * element index, scaling and centralization judged per tensor from the global statistics, the
 * clip by the global norm recomputed from partial sums of squares). Moves data in buckets of
 * whole tensors, so no full-size transient buffer exists. Stage 3 (`packed`): the gradient buffer
 * is the part alone (packed offsets, the backward reduced it already); the same statistics and
 * plan operations, noise still keyed by the global element index. Must never judge anything from
 * a local number: every decision here comes from gathered values every rank holds alike.
 */
import type { ParamView } from '../../engine/model/index.js';
import { addNoise, centralize, clipByGlobalNorm, gradPartialSums, scale, type GradStats, type PartialSums, type PlanEffects } from '../../engine/ops/optim.js';
import type { PolicyPlan } from '../../statecharts/trainingPolicy.js';
import { centralizes } from '../loop/applyPlan.js';
import type { Bucket, Partition, PartSegment } from './partition.js';
import type { ZeroGroup } from './ZeroGroup.js';

const part = (x: Float32Array, s: PartSegment) => x.subarray(s.offset, s.offset + s.numel);
/** Where a segment lies in the gradient buffer: at its flat offset, or (stage 3: the part alone) at its packed one. */
const located = (segments: readonly PartSegment[], packed: boolean): PartSegment[] => segments.map((s) => (packed ? { ...s, offset: s.packed } : s));

/** The buffers the bucketed collectives reuse step after step: one bucket of every rank's slices, and one rank's slice. */
export interface BucketBuffers {
  buckets: Bucket[];
  all: Float32Array;
  one: Float32Array;
}

export function bucketBuffers(partition: Partition): BucketBuffers {
  const buckets = partition.buckets();
  const len = Math.max(0, ...buckets.map((b) => b.hi - b.lo));
  return { buckets, all: new Float32Array(len * partition.world), one: new Float32Array(len) };
}

/** Reduce-scatter of `grads` over the group, bucket by bucket; this rank's part lands at its own offsets. */
export async function reduceScatterGradients(grads: Float32Array, partition: Partition, group: ZeroGroup, bufs: BucketBuffers): Promise<void> {
  for (const b of bufs.buckets) {
    const len = b.hi - b.lo;
    const mine = await group.reduceScatterSum(partition.packRankMajor(grads, b, bufs.all.subarray(0, len * group.world)), bufs.one.subarray(0, len));
    // MEAN over the replicas: the quotient rounded by the Float32Array store, as stage 0 does it
    if (group.dp > 1) for (let i = 0; i < len; i++) mine[i] = mine[i]! / group.dp;
    for (const s of partition.segments(group.rank, b)) grads.set(mine.subarray(s.packed - b.lo, s.packed - b.lo + s.numel), s.offset);
  }
}

/** Every rank's per-tensor partial sums (4 numbers per tensor, zero where a rank holds nothing), in rank order. */
async function gatherPartials(grads: Float32Array, segments: readonly PartSegment[], tensors: number, group: ZeroGroup): Promise<Float64Array> {
  const sums = await gradPartialSums(grads, segments);
  const mine = new Float64Array(4 * tensors);
  segments.forEach((s, i) => {
    const p: PartialSums = sums[i]!;
    mine.set([p.sumAbs, p.sumSq, p.maxAbs, p.nonfinite], 4 * s.tensor);
  });
  // fp64 through the fp32 gather: the bytes travel unchanged
  const all = await group.allGather(new Float32Array(mine.buffer));
  return new Float64Array(all.buffer, all.byteOffset, all.length / 2);
}

/** The statistics of the whole reduced gradient (REFERENCE §5) from every rank's part: the same numbers on every rank. */
export async function partitionedStats(grads: Float32Array, views: readonly ParamView[], partition: Partition, group: ZeroGroup, packed = false): Promise<GradStats> {
  const n = views.length;
  const all = await gatherPartials(grads, located(partition.segments(group.rank), packed), n, group);
  const perTensorMeanAbs = new Float64Array(n);
  let sumSq = 0;
  let meanSum = 0;
  let counted = 0;
  let maxAbs = 0;
  let nonfinite = 0;
  for (let t = 0; t < n; t++) {
    let sumAbs = 0;
    for (let r = 0; r < group.world; r++) {
      const at = 4 * (r * n + t);
      sumAbs += all[at]!;
      sumSq += all[at + 1]!;
      maxAbs = Math.max(maxAbs, all[at + 2]!);
      nonfinite += all[at + 3]!;
    }
    // an empty tensor has no mean |g| and does not count in grad_mean (as gradStats)
    const numel = views[t]!.numel;
    perTensorMeanAbs[t] = numel > 0 ? sumAbs / numel : 0;
    if (numel > 0) {
      meanSum += perTensorMeanAbs[t]!;
      counted++;
    }
  }
  return { gradMean: counted > 0 ? meanSum / counted : 0, l2Norm: Math.sqrt(sumSq), maxAbs, nonfinite, perTensorMeanAbs };
}

/**
 * The plan's operations, in the fused step's order (noise, scaling, centralization, clip), on this
 * rank's part of the reduced gradient; `stats` are the global statistics the plan was made from.
 * The effects are the whole step's (counted per tensor, the same on every rank).
 */
export async function planOnPart(grads: Float32Array, views: readonly ParamView[], partition: Partition, group: ZeroGroup, plan: PolicyPlan, stats: GradStats, packed = false): Promise<PlanEffects> {
  const flat = partition.segments(group.rank);
  const segments = located(flat, packed);
  const fx: PlanEffects = { noised: 0, scaled: 0, centralized: 0, clipFactor: 1, normBeforeClip: stats.l2Norm };
  let changed = false;
  if (plan.noiseStd > 0) {
    for (const [i, s] of segments.entries()) await addNoise(part(grads, s), plan.noiseStd, { seed: plan.noiseSeed, step: plan.step, tensor: s.tensor }, flat[i]!.offset - views[s.tensor]!.offset);
    fx.noised = views.length;
    changed = true;
  }
  if (plan.scaleFactor !== 1 && plan.scaleThreshold > 0) {
    const scaled = views.map((_, t) => stats.perTensorMeanAbs[t]! < plan.scaleThreshold);
    for (const s of segments) if (scaled[s.tensor]) await scale(part(grads, s), plan.scaleFactor);
    fx.scaled = scaled.filter(Boolean).length;
    changed = changed || fx.scaled > 0;
  }
  const central = views.map((v) => centralizes(v, plan.centralize));
  for (const s of segments) {
    if (!central[s.tensor]) continue;
    // parts are cut at row boundaries (partition.ts): every row of the part is whole
    const cols = views[s.tensor]!.shape[1]!;
    await centralize(part(grads, s), s.numel / cols, cols);
  }
  fx.centralized = central.filter(Boolean).length;
  changed = changed || fx.centralized > 0;
  if (plan.clipNorm > 0) {
    if (changed) {
      const all = await gatherPartials(grads, segments, views.length, group);
      let sumSq = 0;
      for (let t = 0; t < views.length; t++) for (let r = 0; r < group.world; r++) sumSq += all[4 * (r * views.length + t) + 1]!;
      fx.normBeforeClip = Math.sqrt(sumSq);
    }
    for (const s of segments) fx.clipFactor = await clipByGlobalNorm(part(grads, s), fx.normBeforeClip, plan.clipNorm);
    if (segments.length === 0) fx.clipFactor = fx.normBeforeClip > plan.clipNorm ? Math.fround(plan.clipNorm / (fx.normBeforeClip + 1e-6)) : 1;
  }
  return fx;
}

/** Every rank's part of `full` (its segments) shared with every rank, bucket by bucket. */
export async function gatherParts(full: Float32Array, partition: Partition, group: ZeroGroup, bufs: BucketBuffers): Promise<void> {
  for (const b of bufs.buckets) {
    const len = b.hi - b.lo;
    const mine = partition.pack(full, group.rank, bufs.one.subarray(0, len), b);
    partition.unpackAll(await group.allGather(mine, bufs.all.subarray(0, len * group.world)), full, b);
  }
}
