/**
 * The training loop of one rank: micro-batches with gradient accumulation, the loss normalized by
 * the valid tokens of the whole optimizer step (agreed across the SP group before the first
 * forward), gradient reduction, the gradient policy (once per optimizer step, after reduction),
 * the plan applied in native code, AdamW with the scheduled LR times the plan's multiplier,
 * checkpoints (rank 0 writes, everybody waits at a barrier) and exact resume. The optimizer side
 * (reduction, statistics, plan, AdamW, hash, checkpointed moments) works on `model.trainable`: the
 * whole model, or only the LoRA adapters when they are attached (the base model is then frozen).
 *
 * Every rank issues the same collectives in the same order: per step one SP all-reduce of the
 * token count, the model's own all-to-alls, the gradient reduction, one world all-reduce of the
 * loss; per checkpoint one barrier. Must never make a decision from local, unreduced numbers,
 * draw unkeyed randomness, or let a rank run past a checkpoint that is not yet committed.
 */
import { createHash } from 'node:crypto';
import type { ChaosHooks } from '../../chaos/ChaosHooks.js';
import type { JobConfig } from '../../config/JobConfig.js';
import type { Model } from '../../engine/model/index.js';
import { adamwStep, gradStats, zero } from '../../engine/ops/optim.js';
import type { PolicyConfig } from '../../statecharts/policyConfig.js';
import { PolicyRunner, planDigest } from '../../statecharts/policyRunner.js';
import type { Logger } from '../../util/Logger.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import { loadCheckpoint, pruneCheckpoints, writeCheckpoint, writeFinalAdapter, writeFinalModel, type TrainerState } from '../checkpoint.js';
import { scheduleOf, scheduledLr, type ScheduleConfig } from '../schedule.js';
import { applyPlan, decays, spansOf } from './applyPlan.js';
import { lossScaleAt, parseLossScale } from './lossScale.js';
import { dpoStep, type PreferenceItem, type ReferenceModel } from './dpo.js';
import { shardSequence, type PackedSequence, type SequenceShard, type TrainData } from './sequences.js';

/** The job keys the loop reads (snake_case as in YAML). */
export type TrainConfig = Pick<
  JobConfig,
  | 'output_dir'
  | 'logging_steps'
  | 'save_steps'
  | 'save_total_limit'
  | 'per_device_train_batch_size'
  | 'gradient_accumulation_steps'
  | 'learning_rate'
  | 'num_train_epochs'
  | 'max_steps'
  | 'lr_scheduler_type'
  | 'warmup_ratio'
  | 'warmup_steps'
  | 'max_grad_norm'
  | 'weight_decay'
  | 'adam_beta1'
  | 'adam_beta2'
  | 'adam_epsilon'
  | 'seed'
  | 'debug'
>;

/** One rank's contribution to the step's world sums. */
interface StepSums {
  lossSum: number;
  localTokens: number;
  /** supervised tokens counted once per replica */
  validTokens: number;
  /** dpo: per-replica means of rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected */
  rewards?: number[];
}

/** The metrics.jsonl names of StepSums.rewards, in order (LLaMA-Factory's). */
const DPO_METRICS = ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected'] as const;

export interface StepInfo {
  step: number;
  loss: number;
  /** tokens this rank processed in the step (its shards, padding excluded) */
  tokens: number;
  planDigest: string;
  policyState: string;
  stepMs: number;
  stats: {
    lr: number;
    grad_mean: number;
    grad_norm: number;
    max_abs_grad: number;
    nonfinite: number;
    interventions: number;
    /** tokens processed by the whole world per second of this step */
    tokens_per_s: number;
    /** supervised tokens of the step over the whole world (the loss normalizer summed over replicas) */
    valid_tokens: number;
    /** dpo only: means over the world's pairs (see DPO_METRICS) */
    [dpoMetric: string]: number;
  };
}

/** Where the loop's progress goes (the rank's WorkloadContext, or a test's recorder). */
export interface TrainerHooks {
  reportStep?(r: StepInfo): void;
  reportTransition?(t: { step: number; from: string; to: string; reason?: string }): void;
  reportCheckpoint?(c: { step: number; path: string; checksum: string }): void;
  setPhase?(phase: string, busy?: boolean): void;
}

export interface TrainerOptions {
  model: Model;
  runtime: ParallelRuntime;
  data: TrainData | TrainData<PreferenceItem>;
  config: TrainConfig;
  policy: PolicyConfig;
  logger: Logger;
  hooks?: TrainerHooks;
  signal?: AbortSignal;
  /** a verified checkpoint directory to continue from */
  resumeFrom?: string | null;
  /** the testing switch of lossScale.ts ("FROM-TO:FACTOR") */
  lossScale?: string | null;
  /** hash of the settings that change the math, stored in checkpoints */
  configHash?: string;
  /** fault-injection seam for tests: runs on the reduced gradients before the policy sees them */
  gradientHook?: (grads: Float32Array, step: number) => void;
  /** stop after this step even if the schedule is longer (tests of interrupted runs) */
  stopAfter?: number;
  /**
   * The fault plan's hooks (ulysses-actors chaos); absent or inert without a plan. Called at fixed
   * points of every step: they change nothing unless a fault is due.
   */
  chaos?: ChaosHooks;
  /**
   * stage dpo: `data` yields PreferenceItems; the loss is DPO's sigmoid loss with `beta`
   * (pref_beta) against the reference model.
   */
  dpo?: { beta: number; reference: ReferenceModel };
}

export interface TrainResult {
  step: number;
  /** sha256 over the parameters (views in order, raw f32 bytes) */
  finalHash: string;
  /** mean loss of every step run in this call */
  losses: number[];
}

/** The code a coordinator sees when the policy gives up on non-finite gradients. */
export class PolicyEscalation extends Error {
  readonly code = 'ERR_POLICY_ESCALATE';
  constructor(readonly step: number, readonly streak: number) {
    super(`non-finite gradients for ${streak} consecutive steps (up to step ${step}): rolling back to the last checkpoint`);
    this.name = 'PolicyEscalation';
  }
}

/** The LoRA dropout key of shard `index` of optimizer step `step` (uint32, distinct for index < 2^16). */
export function dropoutKeyOf(step: number, index: number): number {
  return ((step * 0x10000) + index) >>> 0;
}

/** For hooks that wait on a signal when the caller gave none. */
const neverAborted = new AbortController().signal;

/** sha256 over the trainable parameters (views in order, raw f32 bytes): the adapters with LoRA. */
export function weightsHash(model: Model): string {
  const h = createHash('sha256');
  const { params, views } = model.trainable;
  for (const v of views) {
    const d = params.subarray(v.offset, v.offset + v.numel);
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex');
}

export class Trainer {
  readonly schedule: ScheduleConfig;
  private readonly o: TrainerOptions;
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private policy: PolicyRunner;
  private step = 0;
  private adamStep = 0;
  private lastLr = 0;
  private readonly lossScale;

  constructor(o: TrainerOptions) {
    this.o = o;
    this.schedule = scheduleOf(o.config, o.data.batchesPerEpoch);
    // sized to what the optimizer updates: attach LoRA before constructing the trainer
    this.m = new Float32Array(o.model.trainable.params.length);
    this.v = new Float32Array(o.model.trainable.params.length);
    this.policy = new PolicyRunner(o.policy);
    this.lossScale = parseLossScale(o.lossScale);
  }

  get currentStep(): number {
    return this.step;
  }

  private state(): TrainerState {
    const { gradient_accumulation_steps: gas } = this.o.config;
    const next = this.step * gas;
    const bpe = this.o.data.batchesPerEpoch;
    return {
      version: 1,
      step: this.step,
      adam_step: this.adamStep,
      epoch: next / bpe,
      cursor: { epoch: Math.floor(next / bpe), batch: next % bpe },
      rng: { generator: 'philox4x32-10', seed: this.o.config.seed },
      policy: this.policy.persist(),
      lr: this.lastLr,
      total_steps: this.schedule.totalSteps,
      warmup_steps: this.schedule.warmupSteps,
      interventions: this.policy.context.interventions,
      config_hash: this.o.configHash ?? '',
    };
  }

  private async restore(path: string): Promise<void> {
    const st = await loadCheckpoint(path, this.o.model, this.m, this.v);
    if (this.o.configHash && st.config_hash && st.config_hash !== this.o.configHash) {
      this.o.logger.warn(`resuming ${path} under different settings (config hash ${st.config_hash.slice(0, 12)} != ${this.o.configHash.slice(0, 12)}): the run will not match an uninterrupted one`);
    }
    this.step = st.step;
    this.adamStep = st.adam_step;
    this.lastLr = st.lr;
    this.policy = new PolicyRunner(undefined, st.policy);
    this.o.logger.info(`resumed from ${path} at step ${st.step}`, { policy: this.policy.path });
  }

  async run(): Promise<TrainResult> {
    const { o } = this;
    const { model, runtime, config: c } = o;
    if (o.resumeFrom) await this.restore(o.resumeFrom);
    await model.zeroGrad();
    const losses: number[] = [];
    const last = Math.min(this.schedule.totalSteps, o.stopAfter ?? Infinity);
    o.hooks?.setPhase?.('training', true);
    while (this.step < last) {
      if (o.signal?.aborted) throw o.signal.reason;
      const info = await this.trainStep(this.step + 1);
      this.step = info.step;
      losses.push(info.loss);
      o.hooks?.reportStep?.(info);
      if (runtime.rank === 0 && (this.step % c.logging_steps === 0 || this.step === last)) {
        o.logger.info(`step ${this.step}/${this.schedule.totalSteps} loss ${info.loss.toFixed(4)} lr ${info.stats.lr.toExponential(3)} grad_norm ${info.stats.grad_norm.toExponential(3)} ${info.policyState} ${Math.round(info.stats.tokens_per_s)} tok/s`);
      }
      if (this.step === this.schedule.totalSteps) await this.save();
      else if (this.step % c.save_steps === 0) {
        // A checkpoint inside a run of non-finite steps would be a bad place to roll back to.
        if (this.policy.context.nonfiniteStreak > 0) o.logger.warn(`step ${this.step}: checkpoint skipped (${this.policy.context.nonfiniteStreak} non-finite step(s) in a row)`);
        else await this.save();
      }
    }
    return { step: this.step, finalHash: weightsHash(model), losses };
  }

  /** rank 0 writes; every rank waits so nobody runs ahead of a checkpoint that may be rolled back to. */
  private async save(): Promise<void> {
    const { o } = this;
    o.hooks?.setPhase?.('checkpointing', true);
    if (o.runtime.rank === 0) {
      const chaos = o.chaos;
      const w = await writeCheckpoint(
        o.config.output_dir,
        { model: o.model, m: this.m, v: this.v, state: this.state() },
        chaos ? { beforeRename: (tmp) => chaos.checkpointWrite(this.step, tmp) } : undefined,
      );
      const removed = await pruneCheckpoints(o.config.output_dir, o.config.save_total_limit, w.path);
      o.hooks?.reportCheckpoint?.({ step: this.step, path: w.path, checksum: w.checksum });
      o.logger.info(`saved ${w.path}`, removed.length ? { removed } : undefined);
      // LoRA: the adapter also lands in output_dir itself, where LLaMA-Factory users look for it
      if (this.step === this.schedule.totalSteps && o.model.lora) {
        const files = await writeFinalAdapter(o.config.output_dir, o.model);
        o.logger.info(`saved the LoRA adapter (PEFT layout): ${files.join(', ')}`);
      } else if (this.step === this.schedule.totalSteps) {
        // full fine-tuning: the final weights in output_dir too (HF layout), as LLaMA-Factory leaves them
        const files = await writeFinalModel(o.config.output_dir, w.path);
        o.logger.info(`saved the final model: ${files.join(', ')}`);
      }
    }
    await o.runtime.barrier('world');
    o.hooks?.setPhase?.('training', true);
  }

  /**
   * pt/sft: every shard forward and backward, the loss normalized by the step's supervised tokens
   * over the SP group (agreed before the first forward). Returns this rank's partial loss sum.
   */
  private async languageModelStep(seqs: PackedSequence[], factor: number): Promise<StepSums> {
    const { model, runtime } = this.o;
    const shards: SequenceShard[] = seqs.map((s) => shardSequence(s, runtime.sp, runtime.spRank));
    const count = Float64Array.of(shards.reduce((a, s) => a + s.valid, 0));
    await runtime.allReduceSum(count, 'sp');
    // Loss scaling divides the normalizer: loss and gradients times factor.
    const normalizer = Math.max(1, count[0]!) / factor;
    let lossSum = 0;
    let localTokens = 0;
    for (const [i, s] of shards.entries()) {
      // LoRA dropout masks keyed by (step, shard index): a resumed run draws the same ones
      // (this.step is the previous step until trainStep returns)
      const dropoutKey = model.lora && model.lora.dropout > 0 ? dropoutKeyOf(this.step + 1, i) : undefined;
      const r = await model.forward({ tokens: s.tokens, labels: s.labels, positions: s.positions, docLens: s.docLens, normalizer, dropoutKey });
      await model.backward();
      lossSum += r.loss / factor;
      localTokens += s.tokens.length - s.padding;
    }
    return { lossSum, localTokens, validTokens: runtime.spRank === 0 ? count[0]! : 0 };
  }

  /**
   * dpo: the sigmoid preference loss over the step's pairs (dpo.ts). Every SP member computes the
   * same loss, so only SP rank 0 contributes it (and the rewards) to the world sums.
   */
  private async preferenceStep(pairs: PreferenceItem[], factor: number): Promise<StepSums> {
    const { model, runtime } = this.o;
    const d = this.o.dpo!;
    const step = this.step + 1;
    const dropoutKey = model.lora && model.lora.dropout > 0 ? (i: number) => dropoutKeyOf(step, i) : undefined;
    const r = await dpoStep({ model, reference: d.reference, runtime, items: pairs, beta: d.beta, scale: factor, dropoutKey });
    const lead = runtime.spRank === 0 ? 1 / r.pairs : 0;
    const s = r.sums;
    return {
      lossSum: s.loss * lead,
      localTokens: r.localTokens,
      validTokens: r.valid,
      rewards: [s.rewardChosen * lead, s.rewardRejected * lead, s.accuracy * lead, (s.rewardChosen - s.rewardRejected) * lead, s.logpChosen * lead, s.logpRejected * lead],
    };
  }

  private async trainStep(step: number): Promise<StepInfo> {
    const { o } = this;
    const { model, runtime, config: c } = o;
    const t0 = performance.now();
    // hang and slow faults stall here; inside the timed step, so a slow rank shows in step_ms
    await o.chaos?.beforeStep(step, o.signal ?? neverAborted);
    const gas = c.gradient_accumulation_steps;
    const bpe = o.data.batchesPerEpoch;
    // Loss scaling (the testing switch) divides the normalizer: loss and gradients times factor.
    // a vanishing/exploding fault scales it further (times 1 without one: the same bits)
    const factor = lossScaleAt(this.lossScale, step) * (o.chaos?.lossScale(step) ?? 1);
    // This step's items, all of them first: the loss is normalized over every micro-batch of the step.
    const items: (PackedSequence | PreferenceItem)[] = [];
    for (let j = 0; j < gas; j++) {
      const mb = (step - 1) * gas + j;
      items.push(...(await o.data.microBatch(Math.floor(mb / bpe), mb % bpe)));
    }
    const r = o.dpo ? await this.preferenceStep(items as PreferenceItem[], factor) : await this.languageModelStep(items as PackedSequence[], factor);
    const { lossSum, localTokens, validTokens } = r;
    // NaN/Inf faults poison this rank's part before the reduction, so every replica sees them
    const train = model.trainable;
    o.chaos?.corruptGradients(train.grads, step);
    await o.chaos?.inCollective('reduceGradients', step);
    await runtime.reduceGradients(train.grads);
    const totals = Float64Array.of(lossSum, localTokens, validTokens, ...(r.rewards ?? []));
    await runtime.allReduceSum(totals, 'world');
    const loss = totals[0]! / runtime.dp;
    o.gradientHook?.(train.grads, step);

    const stats = await gradStats(train.grads, spansOf(train));
    const t = this.policy.step({
      step,
      totalSteps: this.schedule.totalSteps,
      warmupSteps: this.schedule.warmupSteps,
      maxGradNorm: c.max_grad_norm,
      seed: c.seed,
      stats: { gradMean: stats.gradMean, l2Norm: stats.l2Norm, maxAbs: stats.maxAbs, nonfinite: stats.nonfinite },
    });
    const plan = t.plan;
    if (t.from !== t.to) o.hooks?.reportTransition?.({ step, from: t.from, to: t.to, reason: `grad_mean=${stats.gradMean.toExponential(3)} nonfinite=${stats.nonfinite}` });
    const lr = scheduledLr(this.schedule, step) * plan.lrMultiplier;
    if (plan.skipUpdate) {
      o.logger.warn(`step ${step}: ${stats.nonfinite} non-finite gradient values: update skipped`);
      if (plan.escalate) {
        await zero(train.grads);
        throw new PolicyEscalation(step, this.policy.context.nonfiniteStreak);
      }
    } else {
      const fx = await applyPlan(train, plan, stats);
      if (c.debug) o.logger.info(`step ${step} plan`, { plan: { ...plan }, effects: { ...fx }, path: t.path });
      this.adamStep++;
      for (const v of train.views) {
        const span = (a: Float32Array) => a.subarray(v.offset, v.offset + v.numel);
        await adamwStep(span(train.params), span(this.m), span(this.v), span(train.grads), {
          lr,
          beta1: c.adam_beta1,
          beta2: c.adam_beta2,
          eps: c.adam_epsilon,
          weightDecay: decays(v) ? c.weight_decay : 0,
          step: this.adamStep,
        });
      }
    }
    this.lastLr = plan.skipUpdate ? 0 : lr;
    await model.zeroGrad();
    const stepMs = performance.now() - t0;
    return {
      step,
      loss,
      tokens: localTokens,
      planDigest: planDigest(plan),
      policyState: t.to,
      stepMs,
      stats: {
        lr: this.lastLr,
        grad_mean: stats.gradMean,
        grad_norm: stats.l2Norm,
        max_abs_grad: stats.maxAbs,
        nonfinite: stats.nonfinite,
        interventions: this.policy.context.interventions,
        tokens_per_s: totals[1]! / Math.max(1e-9, stepMs / 1000),
        valid_tokens: totals[2]!,
        ...(r.rewards ? Object.fromEntries(DPO_METRICS.map((k, i) => [k, totals[3 + i]! / runtime.dp])) : {}),
      },
    };
  }
}
