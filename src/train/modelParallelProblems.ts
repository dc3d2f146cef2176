/**
 * Checks, before any process starts, that the job's model can be split by its
 * sequence_parallel_size over its world (REFERENCE §2): reads the model's config.json and returns
 * every problem (naming the numbers and the SP degrees that would work). Reads one small file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfigProblem } from '../config/ConfigError.js';
import { resolveModelDir } from './trainWorkload.js';
import { parallelProblems } from './validateParallel.js';

export function modelParallelProblems(modelSpec: string, sp: number, world: number): ConfigProblem[] {
  let dir: string;
  try {
    dir = resolveModelDir(modelSpec);
  } catch (e) {
    return [{ key: 'model_name_or_path', value: modelSpec, message: (e as Error).message, fix: 'point it at a directory with a config.json (or use tiny / small)' }];
  }
  const file = join(dir, 'config.json');
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    return [{ key: 'model_name_or_path', value: modelSpec, message: `cannot read ${file}: ${(e as Error).message}`, fix: 'give a valid HF config.json' }];
  }
  const heads = Number(cfg.num_attention_heads);
  const kvHeads = cfg.num_key_value_heads === undefined ? heads : Number(cfg.num_key_value_heads);
  return parallelProblems({ heads, kvHeads, sp, world, source: file });
}
