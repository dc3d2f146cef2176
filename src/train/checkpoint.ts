/**
 * Training checkpoints in the layout of DESIGN.md: `checkpoint-<step>/` holding `config.json`,
 * `model.safetensors` (HF tensor names, in the config's torch_dtype: BF16 for bfloat16 models as
 * HF saves them, else F32), `optimizer.safetensors` (AdamW moments under the same names with
 * `.exp_avg` / `.exp_avg_sq` suffixes, the step in the metadata, and with BF16 weights the fp32
 * master weights as `.master`, so a resume is bitwise; REFERENCE §6), `trainer_state.json`
 * and `checksums.sha256` (sha256sum format, one line per file). With LoRA attached the frozen base
 * is not copied: `adapter_model.safetensors` + `adapter_config.json` (PEFT's layout) replace
 * `model.safetensors`, and the moments are the adapters' (same suffixes, PEFT names).
 * Under ZeRO (REFERENCE §8) the moments are not consolidated: every rank's part is its own file
 * with the partition map beside it (zero/optimizerParts.ts; optimizer.safetensors then keeps the
 * step and any fp32 masters), listed in the checksums like every other file; checkpoints written
 * with consolidated moments are still read. A checkpoint is written into a
 * temporary sibling directory, every file fsynced, checksummed, then renamed into place and the
 * parent directory fsynced: a torn write leaves only a `.tmp-` directory, which is never taken
 * for a checkpoint. Readers verify every checksum before trusting a directory.
 * Must never delete or overwrite a complete checkpoint except through `pruneCheckpoints` or when
 * rewriting the same step.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { savedWeightDtype, weightTensors, type Model } from '../engine/model/index.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, adapterConfigJson } from '../engine/lora.js';
import { toHfConfig } from '../engine/modelConfig.js';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../engine/safetensors.js';
import type { PersistedPolicy } from '../statecharts/policyRunner.js';
import { copyTokenizerFiles } from './tokenizer/tokenizerFiles.js';
import { pidAlive } from '../util/pidAlive.js';
import { CheckpointError } from './checkpointError.js';
import { PARTITION_MAP_FILE, readAllParts, readPartitionMap } from './zero/optimizerParts.js';

export const CHECKSUMS_FILE = 'checksums.sha256';
/** Files every complete checkpoint holds (besides the checksums). */
export const CHECKPOINT_FILES = ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json'] as const;
/** Suffix of the fp32 master weights in optimizer.safetensors when model.safetensors is BF16. */
export const MASTER_SUFFIX = '.master';
/** Files a LoRA checkpoint holds instead (the base model is the run's, unchanged). */
export const LORA_CHECKPOINT_FILES = ['config.json', ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE, 'optimizer.safetensors', 'trainer_state.json'] as const;

/** Where the data stands: the next micro-batch to read. */
export interface DataCursor {
  epoch: number;
  /** index of the next micro-batch inside the epoch */
  batch: number;
}

export interface TrainerState {
  version: 1;
  /** optimizer steps completed */
  step: number;
  /** AdamW updates applied (bias correction); below `step` when updates were skipped */
  adam_step: number;
  /** epochs completed, fractional (HF's trainer_state `epoch`) */
  epoch: number;
  cursor: DataCursor;
  /** the gradient noise is a counter-based stream keyed by (seed, step, tensor): no state to save */
  rng: { generator: 'philox4x32-10'; seed: number };
  policy: PersistedPolicy;
  /** the LR used by the last step (schedule x policy multiplier) */
  lr: number;
  total_steps: number;
  warmup_steps: number;
  /** steps in which the gradient policy changed the gradients, the LR or skipped the update */
  interventions: number;
  /** sha256 of the settings that change the math; a resume under a different hash is warned about */
  config_hash: string;
}

export { CheckpointError };

export function checkpointDir(outputDir: string, step: number): string {
  return join(outputDir, `checkpoint-${step}`);
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeFileSynced(path: string, text: string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export interface CheckpointPayload {
  model: Model;
  /** AdamW first and second moments, flat like model.trainable.params (null: written as ZeRO parts, see `parts`) */
  m: Float32Array | null;
  v: Float32Array | null;
  state: TrainerState;
  /** ZeRO: the part files and map every rank already wrote into `dir` (checkpointTmpDir), completed there and checksummed */
  parts?: { dir: string; files: string[] };
}

/** The temporary directory of checkpoint-<step>, named after the writing process (rank 0's pid). */
export function checkpointTmpDir(outputDir: string, step: number, pid: number = process.pid): string {
  return join(outputDir, `.checkpoint-${step}.tmp-${pid}`);
}

/** Makes the empty temporary directory of checkpoint-<step> (rank 0, before the ranks write their parts). */
export async function prepareCheckpointTmp(outputDir: string, step: number): Promise<string> {
  const tmp = checkpointTmpDir(outputDir, step);
  await mkdir(outputDir, { recursive: true });
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  return tmp;
}

export interface WrittenCheckpoint {
  path: string;
  /** sha256 of the checksums file (names the whole checkpoint) */
  checksum: string;
}

export interface WriteCheckpointOptions {
  /**
   * Runs once every file is in the temporary directory, before the rename (the fault plan's
   * failed-write injection). A throw leaves no checkpoint: the temp dir is never renamed.
   */
  beforeRename?(tmpDir: string): Promise<void>;
}

/** Writes checkpoint-<step> atomically (call on one rank only). */
export async function writeCheckpoint(outputDir: string, p: CheckpointPayload, opts: WriteCheckpointOptions = {}): Promise<WrittenCheckpoint> {
  const step = p.state.step;
  const final = checkpointDir(outputDir, step);
  const tmp = p.parts?.dir ?? (await prepareCheckpointTmp(outputDir, step));
  try {
    const lora = p.model.lora;
    const { params, views } = p.model.trainable;
    const weights = views.map((w) => ({ name: w.name, shape: w.shape, data: params.subarray(w.offset, w.offset + w.numel) }));
    // LoRA adapters are always F32 (PEFT's layout; they train in fp32); full weights follow torch_dtype.
    const dtype = lora ? 'F32' : savedWeightDtype(p.model.config);
    if (lora) {
      await writeSafetensors(join(tmp, ADAPTER_WEIGHTS_FILE), weights, { format: 'pt' });
      await writeFileSynced(join(tmp, ADAPTER_CONFIG_FILE), JSON.stringify(adapterConfigJson(lora, p.model.nameOrPath), null, 2) + '\n');
    } else {
      await writeSafetensors(join(tmp, 'model.safetensors'), await weightTensors(views, params, dtype), { format: 'pt' });
    }
    const { m, v } = p;
    if (!p.parts && (!m || !v)) throw new Error('writeCheckpoint: the moments or their parts are needed');
    // with ZeRO parts the moments are in the part files; the fp32 masters (replicated) stay here
    const moments = views.flatMap((w) => [
      ...(m && v && !p.parts ? [
        { name: `${w.name}.exp_avg`, shape: w.shape, data: m.subarray(w.offset, w.offset + w.numel) },
        { name: `${w.name}.exp_avg_sq`, shape: w.shape, data: v.subarray(w.offset, w.offset + w.numel) },
      ] : []),
      ...(dtype === 'BF16' ? [{ name: `${w.name}${MASTER_SUFFIX}`, shape: w.shape, data: params.subarray(w.offset, w.offset + w.numel) }] : []),
    ]);
    await writeSafetensors(join(tmp, 'optimizer.safetensors'), moments, { optimizer: 'adamw', step: String(step), ...(p.parts ? { zero_parts: PARTITION_MAP_FILE } : {}) });
    await writeFileSynced(join(tmp, 'config.json'), JSON.stringify(toHfConfig(p.model.config, dtype === 'BF16' ? 'bfloat16' : 'float32'), null, 2) + '\n');
    await writeFileSynced(join(tmp, 'trainer_state.json'), JSON.stringify(p.state, null, 2) + '\n');
    const lines: string[] = [];
    for (const f of [...(lora ? LORA_CHECKPOINT_FILES : CHECKPOINT_FILES), ...(p.parts?.files ?? [])]) lines.push(`${await sha256File(join(tmp, f))}  ${f}`);
    const sums = lines.join('\n') + '\n';
    await writeFileSynced(join(tmp, CHECKSUMS_FILE), sums);
    await fsyncPath(tmp);
    await opts.beforeRename?.(tmp);
    // Rewriting a step (after a rollback) replaces the old directory; a crash in between leaves
    // the older checkpoints, never a half-written one.
    await rm(final, { recursive: true, force: true });
    await rename(tmp, final);
    await fsyncPath(outputDir);
    return { path: final, checksum: createHash('sha256').update(sums).digest('hex') };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    // a file system error says what failed, not where: name the checkpoint (the code stays, it classifies the failure)
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw Object.assign(new Error(`cannot write checkpoint-${step} in ${outputDir}: no space left (${code}); the checkpoints before it are intact: free some space and run the job again to resume`, { cause: e }), { code });
    }
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw Object.assign(new Error(`cannot write checkpoint-${step} in ${outputDir}: ${(e as Error).message}`, { cause: e }), { code });
    }
    throw e;
  }
}

/** Steps of the `checkpoint-<step>` directories in `outputDir`, newest first (unverified). */
export async function listCheckpoints(outputDir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(outputDir);
  } catch {
    return [];
  }
  return names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
}

/** Undefined when the directory is a complete checkpoint whose files match their checksums; else why not. */
export async function verifyCheckpoint(path: string): Promise<string | undefined> {
  let sums: string;
  try {
    sums = await readFile(join(path, CHECKSUMS_FILE), 'utf8');
  } catch {
    return `no ${CHECKSUMS_FILE} (torn or foreign directory)`;
  }
  const listed = new Map<string, string>();
  for (const line of sums.split('\n')) {
    if (!line.trim()) continue;
    const m = /^([0-9a-f]{64}) {2}([^/\\]+)$/.exec(line);
    if (!m) return `${CHECKSUMS_FILE}: malformed line ${JSON.stringify(line.slice(0, 80))}`;
    listed.set(m[2]!, m[1]!);
  }
  const required = !listed.has('model.safetensors') && listed.has(ADAPTER_WEIGHTS_FILE) ? LORA_CHECKPOINT_FILES : CHECKPOINT_FILES;
  for (const f of required) if (!listed.has(f)) return `${CHECKSUMS_FILE} does not list ${f}`;
  for (const [f, want] of listed) {
    let got: string;
    try {
      got = await sha256File(join(path, f));
    } catch {
      return `${f} is missing`;
    }
    if (got !== want) return `${f}: sha256 ${got.slice(0, 12)}... does not match the recorded ${want.slice(0, 12)}...`;
  }
  return undefined;
}

/** The newest checkpoint in `outputDir` that verifies; invalid ones are reported through `warn`. */
export async function latestValidCheckpoint(outputDir: string, warn: (msg: string) => void = () => {}): Promise<string | null> {
  for (const step of await listCheckpoints(outputDir)) {
    const dir = checkpointDir(outputDir, step);
    const why = await verifyCheckpoint(dir);
    if (why === undefined) return dir;
    warn(`skipping ${dir}: ${why}`);
  }
  return null;
}

/**
 * Resolves resume_from_checkpoint: a path must verify (else an error), `true` means the latest
 * valid checkpoint in outputDir (null when there is none).
 */
export async function resolveResume(spec: string | true, outputDir: string, warn: (msg: string) => void = () => {}): Promise<string | null> {
  if (spec === true) return latestValidCheckpoint(outputDir, warn);
  try {
    await stat(spec);
  } catch {
    throw new CheckpointError(`resume_from_checkpoint: ${spec} does not exist`);
  }
  const why = await verifyCheckpoint(spec);
  if (why !== undefined) throw new CheckpointError(`resume_from_checkpoint: ${spec} is not a valid checkpoint: ${why}`);
  return spec;
}

/**
 * Fills the model's trainable parameters (all weights, or the attached LoRA adapters, whose
 * settings must match the checkpoint's) and the AdamW moments from a verified checkpoint; returns
 * its state. A full-weight checkpoint cannot resume a LoRA run, nor the reverse (ERR_CHECKPOINT).
 */
export async function loadCheckpoint(path: string, model: Model, m: Float32Array | null, v: Float32Array | null): Promise<TrainerState> {
  let state: TrainerState;
  try {
    state = JSON.parse(await readFile(join(path, 'trainer_state.json'), 'utf8')) as TrainerState;
  } catch (e) {
    throw new CheckpointError(`${path}/trainer_state.json: ${(e as Error).message}`, { cause: e });
  }
  if (state.version !== 1 || !Number.isInteger(state.step) || state.step < 0) throw new CheckpointError(`${path}/trainer_state.json: unsupported or malformed state`);
  const hasAdapter = await stat(join(path, ADAPTER_WEIGHTS_FILE)).then(() => true, () => false);
  const hasModel = await stat(join(path, 'model.safetensors')).then(() => true, () => false);
  if (model.lora) {
    if (!hasAdapter) throw new CheckpointError(`${path}: holds no LoRA adapter (${ADAPTER_WEIGHTS_FILE}) but this run trains LoRA adapters`);
    try {
      await model.loadAdapter(path);
    } catch (e) {
      throw new CheckpointError(`${path}: ${(e as Error).message}`, { cause: e });
    }
  } else {
    if (!hasModel && hasAdapter) throw new CheckpointError(`${path}: holds a LoRA adapter, not full weights, but this run trains every weight (finetuning_type full)`);
    await model.loadWeights(path);
  }
  const header = await readSafetensorsHeader(join(path, 'optimizer.safetensors'));
  if (header.metadata.step !== String(state.step)) {
    throw new CheckpointError(`${path}: optimizer.safetensors is for step ${header.metadata.step}, trainer_state.json for step ${state.step}`);
  }
  const train = model.trainable;
  // ZeRO parts (zero_partition.json): the full moments rebuilt from every rank's part
  const map = m && v ? await readPartitionMap(path) : null;
  if (map) {
    if (map.step !== state.step) throw new CheckpointError(`${path}: ${PARTITION_MAP_FILE} is for step ${map.step}, trainer_state.json for step ${state.step}`);
    await readAllParts(path, map, train.views, m!, v!);
  }
  for (const w of train.views) {
    if (m && v && !map) {
      await readTensorF32(header, `${w.name}.exp_avg`, m.subarray(w.offset, w.offset + w.numel));
      await readTensorF32(header, `${w.name}.exp_avg_sq`, v.subarray(w.offset, w.offset + w.numel));
    }
    // BF16 weights were rounded: the exact fp32 masters replace them (a bitwise resume).
    if (header.tensors.has(`${w.name}${MASTER_SUFFIX}`)) await readTensorF32(header, `${w.name}${MASTER_SUFFIX}`, train.params.subarray(w.offset, w.offset + w.numel));
  }
  train.updated?.();
  return state;
}

/**
 * What LLaMA-Factory leaves in output_dir after training a LoRA: `adapter_model.safetensors` and
 * `adapter_config.json` (PEFT's layout), each written to a temporary name, fsynced and renamed.
 * No-op without adapters (full fine-tuning: the weights are in the last checkpoint).
 */
export async function writeFinalAdapter(outputDir: string, model: Model): Promise<string[]> {
  const lora = model.lora;
  if (!lora) return [];
  await mkdir(outputDir, { recursive: true });
  const weights = lora.views.map((w) => ({ name: w.name, shape: w.shape, data: lora.params.subarray(w.offset, w.offset + w.numel) }));
  await writeSafetensors(join(outputDir, ADAPTER_WEIGHTS_FILE), weights, { format: 'pt' });
  const tmp = join(outputDir, `${ADAPTER_CONFIG_FILE}.tmp-${process.pid}`);
  await writeFileSynced(tmp, JSON.stringify(adapterConfigJson(lora, model.nameOrPath), null, 2) + '\n');
  await rename(tmp, join(outputDir, ADAPTER_CONFIG_FILE));
  await fsyncPath(outputDir);
  return [join(outputDir, ADAPTER_WEIGHTS_FILE), join(outputDir, ADAPTER_CONFIG_FILE)];
}

/**
 * Full fine-tuning: the final weights also land in output_dir itself (`config.json`,
 * `model.safetensors`), where LLaMA-Factory users and `from_pretrained(output_dir)` look for them.
 * Hard links to the final checkpoint's files (a copy where links are not possible), each made
 * under a temporary name and renamed into place; with `baseDir`, the base model's tokenizer files
 * and generation_config.json too, so output_dir is a complete HF model directory.
 */
export async function writeFinalModel(outputDir: string, checkpointPath: string, baseDir?: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of ['config.json', 'model.safetensors']) {
    const tmp = join(outputDir, `${f}.tmp-${process.pid}`);
    await rm(tmp, { force: true });
    try {
      await link(join(checkpointPath, f), tmp);
    } catch {
      await copyFile(join(checkpointPath, f), tmp);
    }
    await rename(tmp, join(outputDir, f));
    out.push(join(outputDir, f));
  }
  if (baseDir !== undefined) for (const f of await copyTokenizerFiles(baseDir, outputDir)) out.push(join(outputDir, f));
  await fsyncPath(outputDir);
  return out;
}

/**
 * A resumed run that had nothing left to train: makes sure output_dir holds the final model (the
 * adapter of a LoRA run, from `model`; the full weights, from the checkpoint), writing what is
 * missing. Returns the files it wrote (none when they were there).
 */
export async function ensureFinalModel(outputDir: string, checkpointPath: string, model: Model): Promise<string[]> {
  const exists = (f: string) => stat(join(outputDir, f)).then(() => true, () => false);
  if (model.lora) return (await exists(ADAPTER_WEIGHTS_FILE)) && (await exists(ADAPTER_CONFIG_FILE)) ? [] : writeFinalAdapter(outputDir, model);
  return (await exists('model.safetensors')) && (await exists('config.json')) ? [] : writeFinalModel(outputDir, checkpointPath);
}

/** Deletes the oldest complete checkpoints beyond `limit` (never `keep`), and stale temporaries. */
export async function pruneCheckpoints(outputDir: string, limit: number | null, keep?: string): Promise<string[]> {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = await readdir(outputDir);
  } catch {
    return removed;
  }
  // temporaries of this process, or of a dead one, that a failed write left behind (another
  // live writer's are not touched; rank 0, the writer, always runs on the hostfile's first host)
  for (const n of names) {
    const m = /^\.checkpoint-\d+\.tmp-(\d+)$/.exec(n);
    if (m && (Number(m[1]) === process.pid || !pidAlive(Number(m[1])))) {
      await rm(join(outputDir, n), { recursive: true, force: true });
      removed.push(n);
    }
  }
  if (limit === null || limit < 1) return removed;
  const steps = await listCheckpoints(outputDir);
  const complete: number[] = [];
  // complete = finished writing (its checksums file exists); verifying every byte again is the readers' job
  for (const s of steps) if (await stat(join(checkpointDir(outputDir, s), CHECKSUMS_FILE)).then(() => true, () => false)) complete.push(s);
  for (const s of complete.slice(limit)) {
    const dir = checkpointDir(outputDir, s);
    if (keep !== undefined && basename(dir) === basename(keep) && dirname(dir) === dirname(keep)) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}
