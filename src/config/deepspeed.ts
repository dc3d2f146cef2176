/**
 * Reads a DeepSpeed JSON named by the `deepspeed:` key and maps the keys that have a meaning
 * here onto job keys (sequence_parallel_size, micro batch, accumulation, clipping, bf16).
 * "auto" defers to the job config, as in HF Trainer. Everything else is listed as ignored with
 * the reason. Must never decide precedence itself (loadJobConfig does) and never throw except
 * ConfigError-shaped problems returned to the caller.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { ConfigProblem } from './ConfigError.js';
import { IGNORED_DEEPSPEED_KEYS } from './ignoredKeys.js';

export interface DeepSpeedMapping {
  /** the file actually read */
  path: string;
  /** job keys with concrete (non-"auto") values from the JSON */
  values: Record<string, unknown>;
  /** train_batch_size when concrete: checked against micro * accumulation * data-parallel */
  trainBatchSize?: number;
  ignored: { key: string; reason: string }[];
  problems: ConfigProblem[];
}

/** DeepSpeed key (dotted for nested) -> job key. */
const MAPPED: Record<string, string> = {
  sequence_parallel_size: 'sequence_parallel_size',
  train_micro_batch_size_per_gpu: 'per_device_train_batch_size',
  gradient_accumulation_steps: 'gradient_accumulation_steps',
  gradient_clipping: 'max_grad_norm',
  'bf16.enabled': 'bf16',
};

/**
 * A relative path is looked up from the working directory first (LLaMA-Factory's convention:
 * `deepspeed: examples/deepspeed/ds_z3_config.json`), then beside the job file.
 */
export function resolveDeepSpeedPath(p: string, configFile?: string): string {
  if (isAbsolute(p)) return p;
  const fromCwd = resolve(p);
  if (existsSync(fromCwd) || !configFile) return fromCwd;
  const besideConfig = resolve(dirname(configFile), p);
  return existsSync(besideConfig) ? besideConfig : fromCwd;
}

export function readDeepSpeedConfig(path: string, source: string): DeepSpeedMapping {
  const out: DeepSpeedMapping = { path, values: {}, ignored: [], problems: [] };
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    out.problems.push({
      key: 'deepspeed',
      source,
      value: path,
      message: err.code === 'ENOENT' ? 'file not found' : `is not valid JSON (${err.message})`,
      fix: err.code === 'ENOENT' ? 'give a path relative to the working directory or to the job file' : 'fix the JSON syntax',
    });
    return out;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    out.problems.push({ key: 'deepspeed', source, value: path, message: 'must hold a JSON object', fix: 'write { "sequence_parallel_size": N, ... }' });
    return out;
  }
  const obj = json as Record<string, unknown>;
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'bf16') {
      take('bf16.enabled', enabledValue(v));
    } else if (k === 'fp16' && enabledValue(v) === true) {
      out.problems.push({ key: `${path}: fp16.enabled`, value: true, message: 'fp16 mixed precision is not implemented', fix: 'use "bf16": { "enabled": true } (or "auto" with bf16: true in the job)' });
    } else if (k === 'train_batch_size') {
      if (v === 'auto') continue;
      if (typeof v === 'number' && Number.isInteger(v) && v > 0) out.trainBatchSize = v;
      else out.problems.push({ key: `${path}: train_batch_size`, value: v, message: 'must be a positive whole number or "auto"', fix: 'use "auto"' });
    } else if (k === 'zero_optimization') {
      zeroStage(v);
    } else if (k in MAPPED) {
      take(k, v);
    } else {
      out.ignored.push({ key: `deepspeed.${k}`, reason: IGNORED_DEEPSPEED_KEYS[k] ?? 'DeepSpeed engine option with no counterpart here' });
    }
  }
  return out;

  // ZeRO's stage becomes zero_stage, stage 3 included (parameters, gradients and moments partitioned).
  function zeroStage(v: unknown): void {
    out.ignored.push({ key: 'deepspeed.zero_optimization', reason: IGNORED_DEEPSPEED_KEYS.zero_optimization! });
    const stage = typeof v === 'object' && v !== null ? (v as Record<string, unknown>).stage : undefined;
    if (stage === undefined || stage === 'auto') return;
    if (stage !== 0 && stage !== 1 && stage !== 2 && stage !== 3) {
      out.problems.push({ key: `${path}: zero_optimization.stage`, value: stage, message: 'must be 0, 1, 2 or 3', fix: 'use a DeepSpeed ZeRO stage' });
      return;
    }
    out.values.zero_stage = stage;
  }

  function enabledValue(v: unknown): unknown {
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>).enabled : v;
  }

  function take(dsKey: string, v: unknown): void {
    if (v === 'auto' || v === undefined || v === null) return;
    out.values[MAPPED[dsKey]!] = v;
  }
}
