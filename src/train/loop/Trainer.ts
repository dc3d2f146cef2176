/**
 * The training loop of one rank: micro-batches with gradient accumulation, the loss normalized by
 * the valid tokens of the whole optimizer step (agreed across the SP group before the first
 * forward), gradient reduction, the gradient policy (once per optimizer step, after reduction),
 * the plan and AdamW (scheduled LR times the plan's multiplier) in one native call of the
 * Optimizer, checkpoints (rank 0 writes, everybody waits at a barrier) and exact resume. The
 * per-stage work of a step is languageModelStep (pt/sft), preferenceStep (dpo), the value head's
 * step (rm) or ktoStep (kto); the checkpointed
 * state is trainerState.ts's. The optimizer side (reduction, statistics, plan, AdamW, hash,
 * checkpointed moments) works on `model.trainable`: the whole model, or only the LoRA adapters
 * when they are attached (the base model is then frozen).
 *
 * Every rank issues the same collectives in the same order: per step one SP all-reduce of the
 * token count, the model's own all-to-alls, the gradient reduction, one world all-reduce of the
 * loss; per checkpoint one barrier. Must never make a decision from local, unreduced numbers,
 * draw unkeyed randomness, or let a rank run past a checkpoint that is not yet committed.
 */
import type { ChaosHooks } from '../ChaosHooks.js';
import type { JobConfig } from '../../config/JobConfig.js';
import type { Model } from '../../engine/model/index.js';
import { zero } from '../../engine/ops/optim.js';
import type { PolicyConfig } from '../../statecharts/policyConfig.js';
import { PolicyRunner, planDigest } from '../../statecharts/policyRunner.js';
import type { Logger } from '../../util/Logger.js';
import type { ParallelRuntime } from '../ParallelRuntime.js';
import type { StepReport } from '../Workload.js';
import { pruneCheckpoints, writeCheckpoint, writeFinalAdapter, writeFinalModel, type TrainerState } from '../checkpoint.js';
import { scheduleOf, scheduledLr, type ScheduleConfig } from '../schedule.js';
import { writeOptimizerParts } from '../zero/saveParts.js';
import { zeroGroupOf } from '../zero/ZeroGroup.js';
import type { PreferenceItem } from './dpo.js';
import { ktoStep, type KtoItem, type KtoOptions } from './kto.js';
import { languageModelStep } from './languageModelStep.js';
import { lossScaleAt, parseLossScale } from './lossScale.js';
import { Optimizer } from './Optimizer.js';
import { PolicyEscalation } from './PolicyEscalation.js';
import { preferenceStep, type PreferenceOptions } from './preferenceStep.js';
import { VALUE_HEAD_FILE, type RewardHead } from './rewardHead.js';
import type { PackedSequence, TrainData } from './sequences.js';
import type { StepSums } from './StepSums.js';
import { restoreTrainer, trainerState } from './trainerState.js';
import { weightsHash } from './weightsHash.js';

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
  | 'zero_stage'
  | 'weight_decay'
  | 'adam_beta1'
  | 'adam_beta2'
  | 'adam_epsilon'
  | 'seed'
  | 'debug'
>;

/** The step report (the `rank.step.done` body) with the figures the loop always fills in. */
export interface StepInfo extends StepReport {
  /** tokens this rank processed in the step (its shards, padding excluded) */
  tokens: number;
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
    /** the stage's own metrics (dpo: DPO_METRICS and ORPO's parts): means over the world's replicas */
    [stageMetric: string]: number;
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
  data: TrainData | TrainData<PreferenceItem> | TrainData<KtoItem>;
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
  /** runs after each optimizer step is reported and before its checkpoint (evaluation); every rank calls it */
  afterStep?: (step: number) => Promise<void>;
  /**
   * The fault plan's hooks (ulysses-actors chaos); absent or inert without a plan. Called at fixed
   * points of every step: they change nothing unless a fault is due.
   */
  chaos?: ChaosHooks;
  /**
   * stage dpo: `data` yields PreferenceItems; the loss is `pref_loss` (sigmoid by default) with
   * `beta` (pref_beta), against the reference model when the loss has one.
   */
  dpo?: PreferenceOptions;
  /** stage rm: `data` yields PreferenceItems; the value head trains with the model (rewardHead.ts) */
  rm?: RewardHead;
  /** stage kto: `data` yields KtoItems (kto.ts) */
  kto?: KtoOptions;
  /** the base model's directory: full fine-tuning's final model gets its tokenizer and generation files */
  baseModelDir?: string;
}

export interface TrainResult {
  step: number;
  /** sha256 over the parameters (views in order, raw f32 bytes) */
  finalHash: string;
  /** mean loss of every step run in this call */
  losses: number[];
}

/** For hooks that wait on a signal when the caller gave none. */
const neverAborted = new AbortController().signal;

export class Trainer {
  readonly schedule: ScheduleConfig;
  private readonly o: TrainerOptions;
  private readonly optimizer: Optimizer;
  private policy: PolicyRunner;
  private step = 0;
  private lastLr = 0;
  private readonly lossScale;

  constructor(o: TrainerOptions) {
    this.o = o;
    this.schedule = scheduleOf(o.config, o.data.batchesPerEpoch);
    // sized to what the optimizer updates: attach LoRA (or shard the model, ZeRO 3) before constructing the trainer
    const rt = o.runtime;
    const sh = o.model.shards;
    if ((o.config.zero_stage >= 3) !== (sh !== null)) throw new Error(`Trainer: zero_stage ${o.config.zero_stage} with ${sh ? 'a sharded' : 'an unsharded'} model (stage 3 needs zero/shardModel.ts first, and only stage 3 takes one)`);
    // stage 3 with LoRA: the sharded base is frozen, and the whole adapters' gradients and moments
    // are partitioned as under stage 2 (they are a small fraction of the model)
    const adaptersOnShards = sh !== null && o.model.lora !== null;
    const set = sh && !adaptersOnShards ? { params: sh.params, grads: sh.grads, views: o.model.views } : o.model.trainable;
    this.optimizer = new Optimizer(set, o.config, zeroGroupOf(rt, adaptersOnShards ? 2 : o.config.zero_stage));
    this.policy = new PolicyRunner(o.policy);
    this.lossScale = parseLossScale(o.lossScale);
  }

  get currentStep(): number {
    return this.step;
  }

  private state(): TrainerState {
    const { o } = this;
    return trainerState({
      step: this.step,
      optimizer: this.optimizer,
      policy: this.policy,
      lastLr: this.lastLr,
      schedule: this.schedule,
      gradientAccumulationSteps: o.config.gradient_accumulation_steps,
      batchesPerEpoch: o.data.batchesPerEpoch,
      seed: o.config.seed,
      configHash: o.configHash ?? '',
    });
  }

  async run(): Promise<TrainResult> {
    const { o } = this;
    const { model, runtime, config: c } = o;
    if (o.resumeFrom) {
      const r = await restoreTrainer(o.resumeFrom, model, this.optimizer, o.configHash, o.logger);
      this.step = r.step;
      this.lastLr = r.lastLr;
      this.policy = r.policy;
      await o.rm?.load(o.resumeFrom);
    }
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
      // the coordinator prints the step line (up's progress display); here only with --debug
      if (runtime.rank === 0 && (this.step % c.logging_steps === 0 || this.step === last)) {
        o.logger.debug(`step ${this.step}/${this.schedule.totalSteps} loss ${info.loss.toFixed(4)} lr ${info.stats.lr.toExponential(3)} grad_norm ${info.stats.grad_norm.toExponential(3)} ${info.policyState} ${Math.round(info.stats.tokens_per_s)} tok/s`);
      }
      await o.afterStep?.(this.step);
      if (this.step === this.schedule.totalSteps) await this.save();
      else if (this.step % c.save_steps === 0) {
        // A checkpoint inside a run of non-finite steps would be a bad place to roll back to.
        if (this.policy.context.nonfiniteStreak > 0) o.logger.warn(`step ${this.step}: checkpoint skipped (${this.policy.context.nonfiniteStreak} non-finite step(s) in a row)`);
        else await this.save();
      }
    }
    return { step: this.step, finalHash: await this.weightsHash(), losses };
  }

  /**
   * ZeRO 3: the whole parameters gathered (a collective) while `use` reads them, released after;
   * with LoRA nothing is gathered (hashes and checkpoints read the whole adapters alone).
   */
  private async withWholeParameters<T>(use: () => Promise<T> | T): Promise<T> {
    const { model } = this.o;
    if (!model.shards || model.lora) return use();
    await model.gatherParameters();
    try {
      return await use();
    } finally {
      model.releaseParameters();
    }
  }

  private weightsHash(): Promise<string> {
    return this.withWholeParameters(() => weightsHash(this.o.model));
  }

  /** rank 0 writes; every rank waits so nobody runs ahead of a checkpoint that may be rolled back to. */
  private async save(): Promise<void> {
    await this.withWholeParameters(() => this.saveWhole());
  }

  private async saveWhole(): Promise<void> {
    const { o } = this;
    o.hooks?.setPhase?.('checkpointing', true);
    // ZeRO: every rank writes its own part of the moments first (a collective)
    const opt = this.optimizer;
    const parts = opt.partition ? await writeOptimizerParts(o.runtime, opt, o.model.trainable.views, o.config.output_dir, this.step) : undefined;
    if (o.runtime.rank === 0) {
      const chaos = o.chaos;
      const w = await writeCheckpoint(
        o.config.output_dir,
        { model: o.model, m: parts ? null : opt.m, v: parts ? null : opt.v, state: this.state(), parts },
        {
          beforeRename: async (tmp) => {
            // the value head lands inside the checkpoint before it becomes visible
            await o.rm?.save(tmp, true);
            await chaos?.checkpointWrite(this.step, tmp);
          },
        },
      );
      const removed = await pruneCheckpoints(o.config.output_dir, o.config.save_total_limit, w.path);
      o.hooks?.reportCheckpoint?.({ step: this.step, path: w.path, checksum: w.checksum });
      o.logger.info(`saved ${w.path}`, removed.length ? { removed } : undefined);
      if (this.step === this.schedule.totalSteps && o.rm) {
        await o.rm.save(o.config.output_dir, false);
        o.logger.info(`saved the value head: ${VALUE_HEAD_FILE}`);
      }
      // LoRA: the adapter also lands in output_dir itself, where LLaMA-Factory users look for it
      if (this.step === this.schedule.totalSteps && o.model.lora) {
        const files = await writeFinalAdapter(o.config.output_dir, o.model);
        o.logger.info(`saved the LoRA adapter (PEFT layout): ${files.join(', ')}`);
      } else if (this.step === this.schedule.totalSteps) {
        // full fine-tuning: the final weights in output_dir too (HF layout), as LLaMA-Factory leaves them
        const files = await writeFinalModel(o.config.output_dir, w.path, o.baseModelDir);
        o.logger.info(`saved the final model: ${files.join(', ')}`);
      }
    }
    await o.runtime.barrier('world');
    o.hooks?.setPhase?.('training', true);
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
    const items: (PackedSequence | PreferenceItem | KtoItem)[] = [];
    for (let j = 0; j < gas; j++) {
      const mb = (step - 1) * gas + j;
      items.push(...(await o.data.microBatch(Math.floor(mb / bpe), mb % bpe)));
    }
    const r: StepSums = o.rm
      ? await o.rm.step(model, runtime, items as PreferenceItem[], step, factor)
      : o.kto
        ? await ktoStep(model, runtime, items as KtoItem[], step, factor, o.kto)
        : o.dpo
        ? await preferenceStep(model, runtime, items as PreferenceItem[], step, factor, o.dpo)
        : await languageModelStep(model, runtime, items as PackedSequence[], step, factor);
    const { lossSum, localTokens, validTokens } = r;
    // NaN/Inf faults poison this rank's part before the reduction, so every replica sees them
    const train = model.trainable;
    // the gradients the optimizer reads (ZeRO 3: this rank's part, already reduced by the backward)
    const grads = this.optimizer.gradients;
    o.chaos?.corruptGradients(grads, step);
    await o.chaos?.inCollective('reduceGradients', step);
    // ZeRO 2: a reduce-scatter leaves each rank its part of the reduced gradient
    await (this.optimizer.shardsGradients ? this.optimizer.reduceGradients() : runtime.reduceGradients(train.grads));
    if (o.rm) await runtime.reduceGradients(o.rm.set.grads);
    const stageMetrics = r.metrics ?? {};
    const metricNames = Object.keys(stageMetrics);
    const totals = Float64Array.of(lossSum, localTokens, validTokens, ...metricNames.map((k) => stageMetrics[k]!));
    await runtime.allReduceSum(totals, 'world');
    const loss = totals[0]! / runtime.dp;
    o.gradientHook?.(grads, step);

    // rm: the model's and the value head's gradients are one gradient to the policy (one global norm)
    const stats = o.rm ? await o.rm.jointStats(await this.optimizer.gradStats(), train.views) : await this.optimizer.gradStats();
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
        await zero(grads);
        throw new PolicyEscalation(step, this.policy.context.nonfiniteStreak);
      }
    } else {
      const fx = o.rm ? await o.rm.updateWithModel(this.optimizer, plan, lr) : await this.optimizer.step(plan, stats, lr);
      if (c.debug) o.logger.info(`step ${step} plan`, { plan: { ...plan }, effects: { ...fx }, path: t.path });
    }
    this.lastLr = plan.skipUpdate ? 0 : lr;
    await model.zeroGrad();
    o.rm?.set.grads.fill(0);
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
        ...Object.fromEntries(metricNames.map((k, i) => [k, totals[3 + i]! / runtime.dp])),
      },
    };
  }
}
