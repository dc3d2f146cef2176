/**
 * What an output_dir holds, judged the same way by `up` (which resumes an interrupted run of the
 * same job by itself) and by the config check (which refuses a directory of another run unless
 * told to overwrite or resume it): nothing yet, a run of this same job, or something else.
 * "The same job" means the same settings that change the math (configHash: every key except
 * where the run writes, how often it logs and saves, how it resumes, the cluster section and
 * debugging), as recorded in the newest checkpoint's trainer_state.json, or, before the first
 * checkpoint, in the job.started events of its events.ndjson.
 * Reads only small files (trainer_state.json, the head of events.ndjson); never writes.
 */
import { createHash } from 'node:crypto';
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobConfig } from '../config/JobConfig.js';
import { metricsRowSteps } from './metricsRows.js';

/** Keys that do not change the math of a run (excluded from the config hash of checkpoints). */
const NON_MATH_KEYS = new Set([
  'output_dir', 'overwrite_output_dir', 'logging_steps', 'save_steps', 'save_total_limit', 'resume_from_checkpoint', 'debug', 'cluster', 'deepspeed', 'plot_loss',
  // export and chat settings: a training run never reads them
  'export_dir', 'export_size', 'export_device', 'export_legacy_format', 'export_quantization_bit', 'export_hub_model_id', 'infer_dtype',
  'do_sample', 'temperature', 'top_p', 'top_k', 'max_new_tokens', 'repetition_penalty',
  // evaluation reads the weights, never changes them (val_size does change the training items)
  'do_eval', 'eval_dataset', 'eval_strategy', 'eval_steps', 'per_device_eval_batch_size', 'compute_accuracy', 'eval_on_each_dataset',
  // the token cache's location and workers change where the tokens are kept, not what they are
  'tokenized_path', 'overwrite_cache', 'preprocessing_num_workers',
  // the backend computes the same math (a checkpoint moves between cpu and cuda)
  'device',
]);

/** sha256 over the settings that change the math (keys sorted, so the order of a YAML file does not matter). */
export function configHash(config: JobConfig): string {
  const canon = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, canon(x)])) : v;
  const kept = Object.fromEntries(Object.entries(config).filter(([k]) => !NON_MATH_KEYS.has(k)));
  return createHash('sha256').update(JSON.stringify(canon(kept))).digest('hex');
}

export type OutputDirState =
  /** missing, or empty */
  | { kind: 'empty' }
  /**
   * a run of this job: its newest checkpoint (null: interrupted before the first one) and
   * whether that checkpoint is already at the end of the run
   */
  | { kind: 'same-job'; checkpoint: string | null; step: number | null; finished: boolean }
  /** anything else: another job's run, or files that are not a run at all */
  | { kind: 'other'; reason: string; entries: string[] };

/** How much of events.ndjson is read to find the job's hash (its first events come first). */
const EVENTS_HEAD_BYTES = 256 * 1024;

async function newestCheckpoint(dir: string, names: string[]): Promise<{ path: string; step: number; hash: string | null; total: number | null } | null> {
  const steps = names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  for (const step of steps) {
    const path = join(dir, `checkpoint-${step}`);
    try {
      const st = JSON.parse(await readFile(join(path, 'trainer_state.json'), 'utf8')) as { config_hash?: unknown; total_steps?: unknown };
      return { path, step, hash: typeof st.config_hash === 'string' && st.config_hash ? st.config_hash : null, total: typeof st.total_steps === 'number' ? st.total_steps : null };
    } catch {
      /* torn, or not a training checkpoint: the next older one */
    }
  }
  return null;
}

/** The config hashes of the job.started events at the head of events.ndjson (oldest first). */
async function startedHashes(dir: string): Promise<string[]> {
  let text: string;
  try {
    const fh = await open(join(dir, 'events.ndjson'), 'r');
    try {
      const buf = Buffer.alloc(EVENTS_HEAD_BYTES);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('"job.started"')) continue;
    try {
      const e = JSON.parse(line) as { type?: unknown; configHash?: unknown };
      if (e.type === 'job.started' && typeof e.configHash === 'string') out.push(e.configHash);
    } catch {
      /* a line cut by the read limit */
    }
  }
  return out;
}

export async function outputDirState(dir: string, config: JobConfig): Promise<OutputDirState> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return { kind: 'empty' };
  }
  if (names.length === 0) return { kind: 'empty' };
  const hash = configHash(config);
  const ckpt = await newestCheckpoint(dir, names);
  if (ckpt?.hash) {
    if (ckpt.hash !== hash) return { kind: 'other', reason: `${ckpt.path} was written by a job with other settings (config hash ${ckpt.hash.slice(0, 12)}, this job's ${hash.slice(0, 12)})`, entries: names };
    return { kind: 'same-job', checkpoint: ckpt.path, step: ckpt.step, finished: ckpt.total !== null && ckpt.step >= ckpt.total };
  }
  const started = await startedHashes(dir);
  const last = started[started.length - 1];
  if (last === undefined) return { kind: 'other', reason: `${dir} holds files but no run of ulysses-actors (no checkpoint, no events.ndjson)`, entries: names };
  if (last !== hash) return { kind: 'other', reason: `${join(dir, 'events.ndjson')} is the log of a job with other settings (config hash ${last.slice(0, 12)}, this job's ${hash.slice(0, 12)})`, entries: names };
  // this job, without a training checkpoint (interrupted before the first save, or a workload whose checkpoints record no hash)
  return { kind: 'same-job', checkpoint: ckpt?.path ?? null, step: ckpt?.step ?? null, finished: false };
}

/** The highest step of metrics.jsonl's rows in `dir` (0: none, or no file). */
export async function loggedStep(dir: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(join(dir, 'metrics.jsonl'), 'utf8');
  } catch {
    return 0;
  }
  return metricsRowSteps(text).reduce((m, r) => Math.max(m, r.step), 0);
}
