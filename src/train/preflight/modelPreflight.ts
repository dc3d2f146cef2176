/**
 * What can be known about a job's model before any process starts: the directory (config.json
 * found where `up` will look), its config (parsed by the engine's parser; the family and position
 * encoding described, or every key the engine refuses), whether its heads split over
 * sequence_parallel_size (suggesting the degrees that work for the model, filtered by the world
 * only when a hostfile fixes it), the weights' safetensors headers, and the tokenizer (loaded as a
 * rank loads it). Reads small files only; never loads weights. Must never throw for bad input:
 * every finding is a ConfigProblem.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfigProblem } from '../../config/ConfigError.js';
import type { JobConfig } from '../../config/JobConfig.js';
import { readModelConfigSync, type ModelConfig } from '../../engine/modelConfig.js';
import { readSafetensorsHeader } from '../../engine/safetensors.js';
import { modelFamilyReport } from '../modelFamilyReport.js';
import { loadTokenizer } from '../tokenizer/index.js';
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';
import { resolveModelDir } from '../trainWorkload.js';
import { modelParallelProblems } from '../modelParallelProblems.js';

export interface ModelPreflight {
  problems: ConfigProblem[];
  /** the family line (`llama, head_dim 32, rope ...`), when the config is usable */
  description: string | null;
  /** e.g. `tokenizer.json (vocab 512)` or `byte tokenizer (no tokenizer.json)` */
  tokenizer: string | null;
  /** the tokenizer ranks will use, for the data checks; null when it cannot be loaded */
  tok: TextTokenizer | null;
  dir: string | null;
}

const problem = (message: string, fix: string, source?: string): ConfigProblem => ({ key: 'model_name_or_path', message, fix, ...(source ? { source } : {}) });

/** `world`: the hostfile's rank count, or undefined when the world follows sequence_parallel_size. */
export async function modelPreflight(c: Pick<JobConfig, 'model_name_or_path' | 'sequence_parallel_size'>, world: number | undefined): Promise<ModelPreflight> {
  const out: ModelPreflight = { problems: [], description: null, tokenizer: null, tok: null, dir: null };
  // a config the engine refuses: every refused key by name (the parser would stop at the first)
  const family = modelFamilyReport(c.model_name_or_path);
  if (family.problems.length) {
    out.problems.push(...family.problems);
    return out;
  }
  out.description = family.description;
  // the directory, config.json and the head split (a missing directory or config is its only problem)
  out.problems.push(...modelParallelProblems(c.model_name_or_path, c.sequence_parallel_size, world));
  let dir: string;
  let cfg: ModelConfig;
  try {
    dir = resolveModelDir(c.model_name_or_path);
    cfg = readModelConfigSync(join(dir, 'config.json'));
  } catch {
    return out;
  }
  out.dir = dir;
  out.problems.push(...(await weightProblems(dir)));
  try {
    out.tok = await loadTokenizer(dir, cfg.vocabSize);
    out.tokenizer = existsSync(join(dir, 'tokenizer.json')) ? `tokenizer.json (vocab ${cfg.vocabSize})` : `byte tokenizer (no tokenizer.json; vocab ${cfg.vocabSize})`;
  } catch (e) {
    out.problems.push(problem(`the tokenizer cannot be loaded: ${(e as Error).message}`, 'give the model directory a valid tokenizer.json (and tokenizer_config.json), or remove it for the byte tokenizer', join(dir, 'tokenizer.json')));
  }
  return out;
}

/** The safetensors headers of the weights (a directory with config.json only starts from a seeded initialization). */
async function weightProblems(dir: string): Promise<ConfigProblem[]> {
  const index = join(dir, 'model.safetensors.index.json');
  const files: string[] = [];
  if (existsSync(index)) {
    try {
      const map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
      files.push(...new Set(Object.values(map)));
    } catch (e) {
      return [problem(`the shard index is not valid JSON: ${(e as Error).message}`, 'fix or remove the index file', index)];
    }
  } else if (existsSync(join(dir, 'model.safetensors'))) files.push('model.safetensors');
  const problems: ConfigProblem[] = [];
  for (const f of files) {
    try {
      await readSafetensorsHeader(join(dir, f));
    } catch (e) {
      problems.push(problem(`weights file ${f}: ${(e as Error).message}`, 'give complete safetensors files (a torn download is the usual cause)', join(dir, f)));
    }
  }
  return problems;
}
