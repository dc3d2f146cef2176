/**
 * The `train` workload a rank runs: sets up the data plane (one process, or Gloo through the
 * coordinator's rendezvous store), loads or initializes the model, prepares the data, resumes
 * from a checkpoint when asked or when the group was restarted, runs the training loop, and
 * returns the final weights' hash. A resume whose checkpoint is at (or past) the end of the run
 * trains nothing: it writes the final model into output_dir if it is missing and says so. For the built-in key–value recall task it also reports recall
 * accuracy before and after training (logged and written to `eval_results.json`).
 * Must never make ranks disagree: every choice (checkpoint, data, schedule) is either a pure
 * function of the config or decided by rank 0 and broadcast.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { JobConfig } from '../config/JobConfig.js';
import { resolveLoraTargets } from '../engine/lora.js';
import { Model, mergeAdapter } from '../engine/model/index.js';
import { readModelConfig } from '../engine/modelConfig.js';
import { configureThreads } from '../engine/threads.js';
import { packageRoot } from '../util/packageRoot.js';
import { checkpointDir, ensureFinalModel, latestValidCheckpoint, resolveResume } from './checkpoint.js';
import { appendAll } from './data/appendAll.js';
import { configHash } from './outputDirState.js';
import { dataStage } from './data/formats.js';
import { buildSequences } from './data/sequences.js';
import type { ItemSource } from './data/ItemSource.js';
import type { DataConfig } from './data/prepareData.js';
import type { SftOptions } from './data/templates.js';
import { prepareTokenCache, type CacheParty } from './data/tokenCache/prepareTokenCache.js';
import { prepareEvalDatasets, splitValidation } from './evalData.js';
import { loadTokenizer } from './tokenizer/index.js';
import { JobEvaluation, writeEvalResults } from './jobEvaluation.js';
import { Evaluator, type EvalSet } from './loop/Evaluator.js';
import { shardModel } from './zero/shardModel.js';
import { recallTask, recallChance, type RecallOptions } from './data/recallTask.js';
import { evaluateRecall, type RecallEval } from './loop/evaluateRecall.js';
import { replicaData } from './loop/replicaData.js';
import type { PackedSequence } from './loop/sequences.js';
import { PolicyEscalation, Trainer } from './loop/index.js';
import type { PreferenceItem, ReferenceModel } from './loop/dpo.js';
import type { KtoItem } from './loop/kto.js';
import { usesReference } from './loop/preferenceLoss.js';
import { RewardHead } from './loop/rewardHead.js';
import { precomputeReference } from './referenceCache/index.js';
import { singleProcessRuntime, type ParallelRuntime } from './ParallelRuntime.js';
import { createParallelRuntime } from './createParallelRuntime.js';
import { recordRollback, rollbackScale } from './policyRollbacks.js';
import { assertFits } from './resourceEstimate.js';
import type { Workload, WorkloadContext } from './Workload.js';

/**
 * Bundled synthetic long-context tasks, by dataset name (recallTask.ts):
 * - `builtin:recall`: 8 key–value pairs, 2-digit values, one queried (hard: needs far more steps
 *   than a CPU run affords from random weights).
 * - `builtin:passkey` (the default job's): one key–value pair (3-letter key, 1-digit value) in
 *   the first quarter, the question after the haystack, then the same question 64 more times
 *   with random gaps. The repeats train the find-and-copy attention densely and locally; only
 *   the first answer, whose one source is the needle ~1000 tokens back (on the other shard under
 *   2-way SP), is scored in evaluation.
 * Chance of an exact answer: 10^-value_len.
 */
export const BUILTIN_TASKS: Record<string, Pick<RecallOptions, 'pairs' | 'valueLen' | 'repeats' | 'repeatGap'>> = {
  'builtin:recall': { pairs: 8, valueLen: 2 },
  'builtin:passkey': { pairs: 1, valueLen: 1, repeats: 64, repeatGap: 8 },
};
/** What each built-in task's accuracy measures (one sentence, printed with the result). */
export const BUILTIN_TASK_MEASURES: Record<string, string> = {
  'builtin:recall': 'the share of held-out questions whose 2-digit value, one of 8 key-value pairs stated earlier in the sequence, the model reproduces exactly',
  'builtin:passkey': 'the share of held-out sequences in which the model recalls the 1-digit passkey stated about 1000 tokens earlier, on the other sequence-parallel rank\'s half',
};
/** Held-out recall examples come from another seed stream than the training ones. */
const EVAL_SEED_OFFSET = 1_000_003;
const RECALL_TRAIN_EXAMPLES = 1024;
const RECALL_EVAL_EXAMPLES = 64;

/** model_name_or_path: a directory (relative to the working directory or the package), or `tiny` / `small`. */
export function resolveModelDir(spec: string): string {
  const candidates = [spec, join(packageRoot(), spec), join(packageRoot(), 'examples', 'models', spec)];
  for (const c of candidates) if (existsSync(join(c, 'config.json'))) return resolve(c);
  throw Object.assign(new Error(`model_name_or_path ${spec}: no config.json there (looked in ${candidates.map((c) => (isAbsolute(c) ? c : resolve(c))).join(', ')})`), { code: 'ERR_CONFIG' });
}

/**
 * An HF checkpoint directory is loaded; a directory with only config.json gets a seeded
 * initialization. `bf16`: the job's mixed precision (REFERENCE §6; fp32 masters either way).
 */
export async function loadModel(dir: string, seed: number, bf16 = false, tiledMlp = false, device: JobConfig['device'] = 'cpu'): Promise<Model> {
  const hasWeights = existsSync(join(dir, 'model.safetensors')) || existsSync(join(dir, 'model.safetensors.index.json'));
  if (hasWeights) return Model.fromPretrained(dir, { bf16, tiledMlp, device });
  return Model.create(await readModelConfig(join(dir, 'config.json')), { seed, bf16, tiledMlp, device });
}

interface JobData {
  /** pt/sft sequences (empty for dpo) */
  items: ItemSource<PackedSequence>;
  /** dpo: chosen/rejected pairs */
  pairs?: ItemSource<PreferenceItem>;
  /** kto: tagged examples with their KL sequences */
  feedback?: ItemSource<KtoItem>;
  /** unmaps the token cache (absent for built-in tasks) */
  close?: () => void;
  /** held-out items of a built-in task (absent for other datasets) */
  evalItems?: PackedSequence[];
  /** chance level of an exact answer on the built-in task */
  chance?: number;
  /** held-out sets of the evaluation loop (val_size, eval_dataset, or a built-in task's held-out items) */
  evalSets: EvalSet[];
}

/** The template and masking keys of the data pipeline. */
export function templateOptionsOf(c: JobConfig): SftOptions {
  return { defaultSystem: c.default_system, enableThinking: c.enable_thinking, trainOnPrompt: c.train_on_prompt, maskHistory: c.mask_history };
}

/** Whether the job evaluates at all (during training or at the end). */
const evaluates = (c: JobConfig) => c.eval_strategy !== 'no' || c.do_eval;

export async function loadJobData(c: JobConfig, modelDir: string, vocabSize: number, party: CacheParty, dp = 1): Promise<JobData> {
  const task = c.dataset.length === 1 ? BUILTIN_TASKS[c.dataset[0]!] : undefined;
  if (task) {
    // Generated in slices with a yield in between: the rank keeps answering heartbeats.
    const recall = async (seed: number, n: number, superviseRepeats = true) => {
      const gen = recallTask({ seed, n, seqLen: c.cutoff_len, ...task, superviseRepeats });
      const items: PackedSequence[] = [];
      for (let done = 0; done < n; ) {
        const slice = [];
        for (let i = 0; i < 16 && done < n; i++, done++) slice.push(gen.next().value!);
        appendAll(items, buildSequences(slice, { cutoffLen: c.cutoff_len, packing: false, overflow: 'truncate' }));
        await new Promise((r) => setImmediate(r));
      }
      return items;
    };
    // as many examples as the run reads (one epoch), unless max_samples says otherwise
    const needed = c.max_steps > 0 ? c.max_steps * c.gradient_accumulation_steps * c.per_device_train_batch_size * dp : RECALL_TRAIN_EXAMPLES;
    const evalItems = await recall(c.seed + EVAL_SEED_OFFSET, RECALL_EVAL_EXAMPLES, false);
    // the held-out examples are also the evaluation loop's set (eval_loss on the scored answers)
    const evalSets: EvalSet[] = evaluates(c) ? [{ name: null, kind: 'lm', items: evalItems }] : [];
    return { items: await recall(c.seed, c.max_samples ?? needed), evalItems, chance: recallChance(task), evalSets };
  }
  // Built once (rank 0, tokenizer threads) into a mapped cache that every rank reads by index.
  const templateOptions = templateOptionsOf(c);
  const { cache } = await prepareTokenCache(
    { stage: dataStage(c.stage), dataset: c.dataset, datasetDir: c.dataset_dir, template: c.template, templateOptions, cutoffLen: c.cutoff_len, maxSamples: c.max_samples, packing: c.packing, outputDir: c.output_dir, tokenizedPath: c.tokenized_path, overwriteCache: c.overwrite_cache, workers: c.preprocessing_num_workers, modelDir, vocabSize, feedbackBatchRows: c.preprocessing_batch_size },
    party,
  );
  const close = () => cache.close();
  // eval_dataset: small held-out sets, prepared in memory as the training data is
  const base: DataConfig = { stage: dataStage(c.stage), dataset: c.dataset, datasetDir: c.dataset_dir, template: c.template, cutoffLen: c.cutoff_len, maxSamples: c.max_samples, packing: c.packing, templateOptions, feedbackBatchRows: c.preprocessing_batch_size };
  const evalSets = c.eval_dataset.length ? prepareEvalDatasets(c, base, await loadTokenizer(modelDir, vocabSize)) : [];
  if (cache.kind === 'feedback') {
    const s = splitValidation(cache.feedback(), c.val_size, c.seed);
    return { items: [], feedback: s.train, close, evalSets: s.held.length ? [{ name: null, kind: 'feedback', items: s.held }] : evalSets };
  }
  if (cache.kind === 'pairs') {
    const s = splitValidation(cache.pairs(), c.val_size, c.seed);
    return { items: [], pairs: s.train, close, evalSets: s.held.length ? [{ name: null, kind: 'preference', items: s.held }] : evalSets };
  }
  const s = splitValidation(cache.sequences(), c.val_size, c.seed);
  return { items: s.train, close, evalSets: s.held.length ? [{ name: null, kind: 'lm', items: s.held }] : evalSets };
}

async function buildRuntime(ctx: WorkloadContext): Promise<ParallelRuntime> {
  if (ctx.world === 1) return singleProcessRuntime();
  // the coordinator's store, through the rank's control connection
  // Gloo listens on the rank's own host (as the hostfile names it), so ranks on other hosts reach it
  const host = ctx.host === undefined || ctx.host === 'localhost' ? undefined : ctx.host;
  return createParallelRuntime({ rank: ctx.rank, world: ctx.world, sp: ctx.job.config.sequence_parallel_size, store: ctx.store, timeoutMs: ctx.job.cluster.collectiveTimeoutMs, ...(host ? { host } : {}) });
}

/**
 * Which checkpoint to start from, decided by rank 0 (which verifies it) and broadcast as
 * [step, where] (where: 0 output_dir, 1 the resume_from_checkpoint path; step -1: none): after a
 * group restart the latest valid checkpoint in output_dir, else resume_from_checkpoint.
 */
async function chooseStart(ctx: WorkloadContext, c: JobConfig, runtime: ParallelRuntime): Promise<string | null> {
  const warn = (m: string) => ctx.logger.warn(m);
  let chosen: string | null = null;
  const pick = Int32Array.of(-1, 0);
  if (runtime.rank === 0) {
    if (ctx.incarnation > 0) chosen = await latestValidCheckpoint(c.output_dir, warn);
    if (chosen === null && c.resume_from_checkpoint !== null) {
      chosen = await resolveResume(c.resume_from_checkpoint, c.output_dir, warn);
      if (chosen !== null && typeof c.resume_from_checkpoint === 'string') pick[1] = 1;
    }
    if (chosen !== null) pick[0] = Number(/checkpoint-(\d+)$/.exec(chosen)?.[1] ?? 0);
  }
  await runtime.broadcast(pick, 'world', 0);
  if (runtime.rank === 0 || pick[0] === -1) return chosen;
  return pick[1] === 1 ? (c.resume_from_checkpoint as string) : checkpointDir(c.output_dir, pick[0]!);
}

export const trainWorkload: Workload = async (ctx) => {
  const { policy } = ctx.job;
  let c = ctx.job.config;
  configureThreads({ localRanks: ctx.localRanks });
  const log = ctx.logger;
  if (ctx.incarnation > 0) {
    const rb = await rollbackScale(c.output_dir);
    if (rb.count > 0) {
      c = { ...c, learning_rate: c.learning_rate * rb.scale };
      log.warn(`after ${rb.count} policy rollback(s) the learning rate is scaled by ${rb.scale} to ${c.learning_rate}`);
    }
  }
  ctx.setPhase('rendezvous', false);
  const runtime = await buildRuntime(ctx);
  let closeData: (() => void) | undefined;
  try {
    const modelDir = resolveModelDir(c.model_name_or_path);
    assertFits(c, modelDir, ctx.localRanks);
    const model = await loadModel(modelDir, c.seed, c.bf16, c.tiled_mlp, c.device);
    model.nameOrPath = c.model_name_or_path;
    // LoRA: adapters (seeded by the job's seed) on the loaded base, which stays frozen; with
    // adapter_name_or_path, as LLaMA-Factory: all but the last merged into the base, the last continued
    if (c.finetuning_type === 'lora') {
      const adapters = c.adapter_name_or_path ?? [];
      for (const dir of adapters.slice(0, -1)) {
        const mg = await mergeAdapter(model, dir);
        if (runtime.rank === 0) log.info(`merged the LoRA adapter ${dir} (r=${mg.rank} alpha=${mg.alpha}, ${mg.tensors} weights) into the base`);
      }
      const last = adapters[adapters.length - 1];
      const l = last === undefined
        ? await model.attachLora({ rank: c.lora_rank, alpha: c.lora_alpha, dropout: c.lora_dropout, targets: c.lora_target, seed: c.seed })
        : await model.loadAdapter(last, { seed: c.seed });
      if (runtime.rank === 0) {
        log.info(`LoRA r=${l.rank} alpha=${l.alpha} dropout=${l.dropout} on ${l.targets.join(',')}${last === undefined ? '' : ` continued from ${last}`}: ${l.views.reduce((a, v) => a + v.numel, 0)} trainable parameters`);
        if (last !== undefined && (l.rank !== c.lora_rank || l.alpha !== c.lora_alpha || l.targets.join(',') !== resolveLoraTargets(c.lora_target).join(',')))
          log.warn(`the adapter ${last} keeps its own settings (r=${l.rank} alpha=${l.alpha} on ${l.targets.join(',')}); lora_rank, lora_alpha and lora_target of the job do not apply`);
      }
    }
    runtime.attachModel(model);
    // ZeRO 3: from here on each rank keeps its part of the parameters (gathered per layer in forward and backward)
    if (c.zero_stage === 3) await shardModel(model, runtime);
    ctx.setPhase('loading', true);
    const party: CacheParty = { rank: ctx.rank, world: ctx.world, store: ctx.store, signal: ctx.signal, info: (m) => log.info(m), warn: (m) => log.warn(m) };
    const data = await loadJobData(c, modelDir, model.config.vocabSize, party, runtime.dp);
    closeData = data.close;
    const resumeFrom = await chooseStart(ctx, c, runtime);
    // precompute_ref_log_probs: the items carry the reference's sums, scored now from the initial
    // weights (a resume's checkpoint is restored later, by the trainer), and no reference is kept
    const refNeeded = data.feedback !== undefined || (data.pairs !== undefined && c.stage === 'dpo' && usesReference(c.pref_loss));
    const scored = refNeeded && c.precompute_ref_log_probs ? await scoreReferenceOnce(c, model, runtime, data, log) : null;
    if (scored) Object.assign(data, scored);
    const split = { seed: c.data_seed ?? c.seed, dp: runtime.dp, dpRank: runtime.dpRank, batch: c.per_device_train_batch_size, shuffle: !c.disable_shuffling };
    const trainData = data.feedback ? replicaData(data.feedback, split) : data.pairs ? replicaData(data.pairs, split) : replicaData(data.items, split);
    const loss = { kind: c.pref_loss, simpoGamma: c.simpo_gamma, ftx: c.pref_ftx, labelSmoothing: c.dpo_label_smoothing };
    // orpo and simpo are reference-free: no frozen copy is loaded for them
    const reference = refNeeded && !scored ? await referenceModel(c, model, modelDir, runtime) : undefined;
    const dpo = data.pairs && c.stage === 'dpo' ? { beta: c.pref_beta, loss, reference } : undefined;
    const rm = c.stage === 'rm' ? new RewardHead(model.config.hiddenSize, c.seed, c) : undefined;
    const kto = data.feedback
      ? { beta: c.pref_beta, desirableWeight: c.kto_chosen_weight, undesirableWeight: c.kto_rejected_weight, ftx: c.pref_ftx, batch: c.per_device_train_batch_size, reference }
      : undefined;
    let evaluation: JobEvaluation | null = null;
    const trainer = new Trainer({
      model,
      runtime,
      data: trainData,
      dpo,
      rm,
      kto,
      afterStep: async (step) => evaluation?.afterStep(step),
      config: c,
      policy,
      logger: log,
      hooks: ctx,
      signal: ctx.signal,
      chaos: ctx.chaos,
      resumeFrom,
      lossScale: c.gradient_policy.loss_scale_schedule,
      configHash: configHash(ctx.job.config),
      baseModelDir: modelDir,
    });
    if (data.evalSets.length) {
      const evaluator = new Evaluator({ model, runtime, sets: data.evalSets, config: c, totalSteps: trainer.schedule.totalSteps, batchesPerEpoch: trainData.batchesPerEpoch, dpo, rm, kto });
      evaluation = new JobEvaluation(evaluator, ctx, runtime.rank);
    }
    if (runtime.rank === 0) {
      log.info(`training ${modelDir}: ${model.numParams} parameters, ${data.feedback ? `${data.feedback.length} KTO examples` : data.pairs ? `${data.pairs.length} preference pairs` : `${data.items.length} sequences`} of up to ${c.cutoff_len} tokens, ${trainer.schedule.totalSteps} steps (warmup ${trainer.schedule.warmupSteps}), world ${runtime.world} = sp ${runtime.sp} x dp ${runtime.dp}`);
    }
    let before: RecallEval | undefined;
    if (data.evalItems && !resumeFrom) {
      ctx.setPhase('evaluating', true);
      before = await evaluateRecall(model, runtime, data.evalItems);
      if (runtime.rank === 0) log.info(`recall accuracy before training: ${fmt(before, data.chance!)}`);
    }
    let result;
    try {
      result = await trainer.run();
    } catch (e) {
      if (e instanceof PolicyEscalation) await recordRollback(c.output_dir, e, ctx.incarnation);
      throw e;
    }
    const trained = result.losses.length;
    let note: string | undefined;
    if (trained === 0 && resumeFrom) {
      // the checkpoint is already at (or past) the end: nothing to train, only the final model to make sure of
      const total = trainer.schedule.totalSteps;
      const where = result.step > total ? `past the end of this job (${total} steps)` : `the end of this job (${total} steps)`;
      let final = 'the final model was already in output_dir';
      if (runtime.rank === 0) {
        const written = await ensureFinalModel(c.output_dir, resumeFrom, model);
        if (written.length) final = `wrote the final model: ${written.join(', ')}`;
      }
      note = `nothing to train: ${resumeFrom} is at step ${result.step}, ${where}; ${final}`;
      if (runtime.rank === 0) log.warn(note);
    }
    // eval_results.json: do_eval's metrics of the final weights (HF's keys), and a built-in task's
    // recall (not again when a finished run is resumed)
    const results: Record<string, unknown> = {};
    const evalDone = trained === 0 && existsSync(join(c.output_dir, 'eval_results.json'));
    if (c.do_eval && evaluation && !evalDone) Object.assign(results, await evaluation.final(result.step));
    if (data.evalItems && !evalDone) {
      ctx.setPhase('evaluating', true);
      const after = await evaluateRecall(model, runtime, data.evalItems);
      if (runtime.rank === 0) log.info(`recall accuracy after training: ${fmt(after, data.chance!)}${before ? ` (before training: ${fmt(before, data.chance!)})` : ''}`);
      const task = c.dataset[0]!;
      Object.assign(results, { task, measures: BUILTIN_TASK_MEASURES[task], chance: data.chance, criterion: 'the argmax of every answer token is the label', before: before ?? null, after, step: result.step });
    }
    if (runtime.rank === 0 && Object.keys(results).length) await writeEvalResults(c.output_dir, results);
    ctx.setPhase('done', false);
    return { step: result.step, finalHash: result.finalHash, trained, ...(note ? { note } : {}) };
  } finally {
    closeData?.();
    await runtime.close();
  }
};

/**
 * DPO's reference: the base model with its adapters disabled (LoRA), or a frozen copy of the
 * initial weights loaded like the policy's (full fine-tuning; loaded from model_name_or_path,
 * never from a checkpoint, so a resumed run scores against the same reference).
 */
async function referenceModel(c: JobConfig, model: Model, modelDir: string, runtime: ParallelRuntime): Promise<ReferenceModel> {
  if (c.finetuning_type === 'lora') return { model, enter: () => model.setAdaptersEnabled(false), exit: () => model.setAdaptersEnabled(true) };
  const ref = await loadModel(modelDir, c.seed, c.bf16, false, c.device);
  runtime.attachModel(ref);
  // ZeRO 3: the frozen copy keeps only this rank's part too, gathered per layer in its forwards
  if (c.zero_stage === 3) await shardModel(ref, runtime, { frozen: true });
  return { model: ref };
}

/**
 * The reference's sums of every preference / KTO item (precompute_ref_log_probs), scored by the
 * model itself before training, as the reference it replaces would run: full fine-tuning untiled
 * (the frozen copy is loaded so), LoRA as it is (the reference is the model with adapters off).
 */
async function scoreReferenceOnce(c: JobConfig, model: Model, runtime: ParallelRuntime, data: JobData, log: WorkloadContext['logger']) {
  const lora = c.finetuning_type === 'lora';
  const untile = c.tiled_mlp && !lora;
  if (untile) model.setMlpTiling(false);
  try {
    return await precomputeReference({ model, lora, runtime, data: { pairs: data.pairs, feedback: data.feedback, evalSets: data.evalSets }, outputDir: c.output_dir, overwrite: c.overwrite_cache, bf16: c.bf16, device: c.device, info: (m) => log.info(m) });
  } finally {
    if (untile) model.setMlpTiling(true);
  }
}

function fmt(e: RecallEval, chance: number): string {
  return `accuracy ${(100 * e.answerAccuracy).toFixed(1)}% (${e.answersCorrect}/${e.answers}), chance ${Number((100 * chance).toPrecision(3))}%, mean p(answer token) ${e.meanAnswerProb.toFixed(3)}`;
}
