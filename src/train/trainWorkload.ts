/**
 * The `train` workload a rank runs: sets up the data plane (one process, or Gloo through the
 * coordinator's rendezvous store), loads or initializes the model, prepares the data, resumes
 * from a checkpoint when asked or when the group was restarted, runs the training loop, and
 * returns the final weights' hash. For the built-in key–value recall task it also reports recall
 * accuracy before and after training (logged and written to `eval_results.json`).
 * Must never make ranks disagree: every choice (checkpoint, data, schedule) is either a pure
 * function of the config or decided by rank 0 and broadcast.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { JobConfig } from '../config/JobConfig.js';
import { Model } from '../engine/model/index.js';
import { readModelConfig } from '../engine/modelConfig.js';
import { configureThreads } from '../engine/threads.js';
import { packageRoot } from '../util/packageRoot.js';
import { checkpointDir, latestValidCheckpoint, resolveResume } from './checkpoint.js';
import { buildSequences } from './data/sequences.js';
import { prepareData } from './data/prepareData.js';
import { recallTask, recallChance, type RecallOptions } from './data/recallTask.js';
import { loadTokenizer } from './tokenizer/index.js';
import { evaluateRecall, type RecallEval } from './loop/evaluateRecall.js';
import { replicaData } from './loop/replicaData.js';
import type { PackedSequence } from './loop/sequences.js';
import { PolicyEscalation, Trainer } from './loop/index.js';
import type { PreferenceItem, ReferenceModel } from './loop/dpo.js';
import { singleProcessRuntime, type ParallelRuntime } from './ParallelRuntime.js';
import { createParallelRuntime } from './createParallelRuntime.js';
import { recordRollback, rollbackScale } from './policyRollbacks.js';
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
/** Held-out recall examples come from another seed stream than the training ones. */
const EVAL_SEED_OFFSET = 1_000_003;
const RECALL_TRAIN_EXAMPLES = 1024;
const RECALL_EVAL_EXAMPLES = 64;

/** Keys that do not change the math of a run (excluded from the config hash of checkpoints). */
const NON_MATH_KEYS = new Set(['output_dir', 'logging_steps', 'save_steps', 'save_total_limit', 'resume_from_checkpoint', 'debug', 'cluster', 'deepspeed', 'device']);

export function configHash(config: JobConfig): string {
  const canon = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, canon(x)])) : v;
  const kept = Object.fromEntries(Object.entries(config).filter(([k]) => !NON_MATH_KEYS.has(k)));
  return createHash('sha256').update(JSON.stringify(canon(kept))).digest('hex');
}

/** model_name_or_path: a directory (relative to the working directory or the package), or `tiny` / `small`. */
export function resolveModelDir(spec: string): string {
  const candidates = [spec, join(packageRoot(), spec), join(packageRoot(), 'examples', 'models', spec)];
  for (const c of candidates) if (existsSync(join(c, 'config.json'))) return resolve(c);
  throw Object.assign(new Error(`model_name_or_path ${spec}: no config.json there (looked in ${candidates.map((c) => (isAbsolute(c) ? c : resolve(c))).join(', ')})`), { code: 'ERR_CONFIG' });
}

/** An HF checkpoint directory is loaded; a directory with only config.json gets a seeded initialization. */
export async function loadModel(dir: string, seed: number, device: JobConfig['device'] = 'cpu'): Promise<Model> {
  const hasWeights = existsSync(join(dir, 'model.safetensors')) || existsSync(join(dir, 'model.safetensors.index.json'));
  if (hasWeights) return Model.fromPretrained(dir, { device });
  return Model.create(await readModelConfig(join(dir, 'config.json')), { seed, device });
}

interface JobData {
  /** pt/sft sequences (empty for dpo) */
  items: PackedSequence[];
  /** dpo: chosen/rejected pairs */
  pairs?: PreferenceItem[];
  /** held-out items of a built-in task (absent for other datasets) */
  evalItems?: PackedSequence[];
  /** chance level of an exact answer on the built-in task */
  chance?: number;
}

export async function loadJobData(c: JobConfig, modelDir: string, vocabSize: number, dp = 1): Promise<JobData> {
  const task = c.dataset.length === 1 ? BUILTIN_TASKS[c.dataset[0]!] : undefined;
  if (task) {
    // Generated in slices with a yield in between: the rank keeps answering heartbeats.
    const recall = async (seed: number, n: number, superviseRepeats = true) => {
      const gen = recallTask({ seed, n, seqLen: c.cutoff_len, ...task, superviseRepeats });
      const items: PackedSequence[] = [];
      for (let done = 0; done < n; ) {
        const slice = [];
        for (let i = 0; i < 16 && done < n; i++, done++) slice.push(gen.next().value!);
        items.push(...buildSequences(slice, { cutoffLen: c.cutoff_len, packing: false, overflow: 'truncate' }));
        await new Promise((r) => setImmediate(r));
      }
      return items;
    };
    // as many examples as the run reads (one epoch), unless max_samples says otherwise
    const needed = c.max_steps > 0 ? c.max_steps * c.gradient_accumulation_steps * c.per_device_train_batch_size * dp : RECALL_TRAIN_EXAMPLES;
    return { items: await recall(c.seed, c.max_samples ?? needed), evalItems: await recall(c.seed + EVAL_SEED_OFFSET, RECALL_EVAL_EXAMPLES, false), chance: recallChance(task) };
  }
  const tok = await loadTokenizer(modelDir, vocabSize);
  const prepared = prepareData({ stage: c.stage, dataset: c.dataset, datasetDir: c.dataset_dir, template: c.template, cutoffLen: c.cutoff_len, maxSamples: c.max_samples, packing: c.packing }, tok);
  if (prepared.kind === 'pairs') return { items: [], pairs: prepared.items };
  return { items: prepared.items };
}

async function buildRuntime(ctx: WorkloadContext): Promise<ParallelRuntime> {
  if (ctx.world === 1) return singleProcessRuntime();
  // the coordinator's store, through the rank's control connection
  return createParallelRuntime({ rank: ctx.rank, world: ctx.world, sp: ctx.job.config.sequence_parallel_size, store: ctx.store, timeoutMs: ctx.job.cluster.collectiveTimeoutMs });
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
  try {
    const modelDir = resolveModelDir(c.model_name_or_path);
    const model = await loadModel(modelDir, c.seed, c.device);
    model.nameOrPath = c.model_name_or_path;
    // LoRA: adapters (seeded by the job's seed) on the loaded base, which stays frozen
    if (c.finetuning_type === 'lora') {
      const l = await model.attachLora({ rank: c.lora_rank, alpha: c.lora_alpha, dropout: c.lora_dropout, targets: c.lora_target, seed: c.seed });
      if (runtime.rank === 0) log.info(`LoRA r=${l.rank} alpha=${l.alpha} dropout=${l.dropout} on ${l.targets.join(',')}: ${l.views.reduce((a, v) => a + v.numel, 0)} trainable parameters`);
    }
    runtime.attachModel(model);
    ctx.setPhase('loading', true);
    const data = await loadJobData(c, modelDir, model.config.vocabSize, runtime.dp);
    const resumeFrom = await chooseStart(ctx, c, runtime);
    const split = { seed: c.seed, dp: runtime.dp, dpRank: runtime.dpRank, batch: c.per_device_train_batch_size };
    const trainer = new Trainer({
      model,
      runtime,
      data: data.pairs ? replicaData(data.pairs, split) : replicaData(data.items, split),
      dpo: data.pairs ? { beta: c.pref_beta, reference: await referenceModel(c, model, modelDir, runtime) } : undefined,
      config: c,
      policy,
      logger: log,
      hooks: ctx,
      signal: ctx.signal,
      chaos: ctx.chaos,
      resumeFrom,
      lossScale: c.gradient_policy.loss_scale_schedule,
      configHash: configHash(ctx.job.config),
    });
    if (runtime.rank === 0) {
      log.info(`training ${modelDir}: ${model.numParams} parameters, ${data.pairs ? `${data.pairs.length} preference pairs` : `${data.items.length} sequences`} of up to ${c.cutoff_len} tokens, ${trainer.schedule.totalSteps} steps (warmup ${trainer.schedule.warmupSteps}), world ${runtime.world} = sp ${runtime.sp} x dp ${runtime.dp}`);
    }
    let before: RecallEval | undefined;
    if (data.evalItems && !resumeFrom) {
      ctx.setPhase('evaluating', true);
      before = await evaluateRecall(model, runtime, data.evalItems);
      if (runtime.rank === 0) log.info(`recall accuracy before training: ${fmt(before)} (chance ${data.chance})`);
    }
    let result;
    try {
      result = await trainer.run();
    } catch (e) {
      if (e instanceof PolicyEscalation) await recordRollback(c.output_dir, e, ctx.incarnation);
      throw e;
    }
    if (data.evalItems) {
      ctx.setPhase('evaluating', true);
      const after = await evaluateRecall(model, runtime, data.evalItems);
      if (runtime.rank === 0) {
        log.info(`recall accuracy after training: ${fmt(after)}${before ? ` (before: ${fmt(before)})` : ''}`);
        await writeFile(join(c.output_dir, 'eval_results.json'), JSON.stringify({ task: c.dataset[0], chance: data.chance, criterion: 'the argmax of every answer token is the label', before: before ?? null, after, step: result.step }, null, 2) + '\n');
      }
    }
    ctx.setPhase('done', false);
    return { step: result.step, finalHash: result.finalHash };
  } finally {
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
  const ref = await loadModel(modelDir, c.seed, c.device);
  runtime.attachModel(ref);
  return { model: ref };
}

function fmt(e: RecallEval): string {
  return `${(100 * e.answerAccuracy).toFixed(1)}% of answers (${e.answersCorrect}/${e.answers}), mean p(answer token) ${e.meanAnswerProb.toFixed(3)}`;
}
