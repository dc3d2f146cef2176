/**
 * Checks, before any process starts, that the job's model can be split by its
 * sequence_parallel_size over its world (REFERENCE §2): reads the model's config.json (the
 * engine's parser) and returns every problem (naming the numbers and the SP degrees that would
 * work: for the world when a hostfile fixes it; `world` undefined when the world follows
 * sequence_parallel_size, so the suggestions are every degree the model's heads allow). Reads one
 * small file.
 */
import { join } from 'node:path';
import type { ConfigProblem } from '../config/ConfigError.js';
import { readModelConfigSync, type ModelConfig } from '../engine/modelConfig.js';
import { resolveModelDir } from './trainWorkload.js';
import { parallelProblems } from './validateParallel.js';

export function modelParallelProblems(modelSpec: string, sp: number, world: number | undefined): ConfigProblem[] {
  let dir: string;
  try {
    dir = resolveModelDir(modelSpec);
  } catch (e) {
    return [{ key: 'model_name_or_path', value: modelSpec, message: (e as Error).message, fix: 'point it at a local HF model directory (config.json, model.safetensors, tokenizer.json) or a bundled name such as tiny or llama3-mini' }];
  }
  const file = join(dir, 'config.json');
  let cfg: ModelConfig;
  try {
    cfg = readModelConfigSync(file);
  } catch (e) {
    return [{ key: 'model_name_or_path', value: modelSpec, message: (e as Error).message, fix: 'give a valid HF config.json' }];
  }
  return parallelProblems({ heads: cfg.numAttentionHeads, kvHeads: cfg.numKeyValueHeads, sp, world, source: file });
}
