/**
 * The loop's checkpointed state (trainer_state.json, DESIGN.md): what a checkpoint records of a
 * run's progress, and restoring a run from a verified checkpoint (weights or adapters, AdamW
 * moments, the update count, the policy's statechart snapshot). Must never resume with moments
 * or a step that do not belong to the weights it loaded.
 */
import type { Model } from '../../engine/model/index.js';
import { PolicyRunner } from '../../statecharts/policyRunner.js';
import type { Logger } from '../../util/Logger.js';
import { CheckpointError, loadCheckpoint, type TrainerState } from '../checkpoint.js';
import { PARTITION_MAP_FILE, readOwnPart, readPartitionMap, sameCut } from '../zero/optimizerParts.js';
import type { ScheduleConfig } from '../schedule.js';
import type { Optimizer } from './Optimizer.js';

/** Where a run stands after `step` optimizer steps. */
export interface TrainerProgress {
  step: number;
  optimizer: Optimizer;
  policy: PolicyRunner;
  /** the LR the last step used (0 when its update was skipped) */
  lastLr: number;
  schedule: ScheduleConfig;
  gradientAccumulationSteps: number;
  batchesPerEpoch: number;
  seed: number;
  configHash: string;
}

export function trainerState(p: TrainerProgress): TrainerState {
  const next = p.step * p.gradientAccumulationSteps;
  const bpe = p.batchesPerEpoch;
  return {
    version: 1,
    step: p.step,
    adam_step: p.optimizer.adamStep,
    epoch: next / bpe,
    cursor: { epoch: Math.floor(next / bpe), batch: next % bpe },
    rng: { generator: 'philox4x32-10', seed: p.seed },
    policy: p.policy.persist(),
    lr: p.lastLr,
    total_steps: p.schedule.totalSteps,
    warmup_steps: p.schedule.warmupSteps,
    interventions: p.policy.context.interventions,
    config_hash: p.configHash,
  };
}

/**
 * Loads checkpoint `path` into the model's trainable parameters and the optimizer; resolves to the
 * step, last LR and policy to continue with. Warns when the checkpoint was made under other
 * settings (`configHash`): the run will then not match an uninterrupted one.
 */
export async function restoreTrainer(path: string, model: Model, optimizer: Optimizer, configHash: string | undefined, logger: Logger): Promise<{ step: number; lastLr: number; policy: PolicyRunner }> {
  // Under ZeRO on the checkpoint's own cut each rank reads only its part; otherwise the full
  // moments (consolidated, or rebuilt from the parts by their map) are read and this rank keeps
  // its part of them (re-cut for any world size).
  const partition = optimizer.partition;
  const map = partition ? await readPartitionMap(path) : null;
  let st: TrainerState;
  if (partition && map && sameCut(map, partition)) {
    st = await loadCheckpoint(path, model, null, null);
    if (map.step !== st.step) throw new CheckpointError(`${path}: ${PARTITION_MAP_FILE} is for step ${map.step}, trainer_state.json for step ${st.step}`);
    await readOwnPart(path, map, optimizer.zeroRank, optimizer.m, optimizer.v);
    logger.info(`ZeRO: each rank read its own part of the optimizer state (${map.world} parts, the same cut)`);
  } else {
    const full = partition ? { m: new Float32Array(model.trainable.params.length), v: new Float32Array(model.trainable.params.length) } : optimizer;
    st = await loadCheckpoint(path, model, full.m, full.v);
    if (partition) {
      optimizer.takeMoments(full.m, full.v);
      logger.info(`ZeRO: optimizer state ${map ? `of ${map.world} parts re-cut by its partition map` : '(consolidated) cut'} into ${partition.world} parts`);
    }
  }
  // ZeRO 3: the weights were read whole; this rank keeps its part (any world size: the cut is the
  // run's). With LoRA the checkpoint held the adapters alone: the frozen base part stays as it is
  if (model.shards && !model.lora) await model.takeParameterPart();
  if (configHash && st.config_hash && st.config_hash !== configHash) {
    logger.warn(`resuming ${path} under different settings (config hash ${st.config_hash.slice(0, 12)} != ${configHash.slice(0, 12)}): the run will not match an uninterrupted one`);
  }
  optimizer.restore(st.adam_step);
  const policy = new PolicyRunner(undefined, st.policy);
  logger.info(`resumed from ${path} at step ${st.step}`, { policy: policy.path });
  return { step: st.step, lastLr: st.lr, policy };
}
