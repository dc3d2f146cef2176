/**
 * What check-config and `up` print about a job's model before anything starts: the one-line
 * family / position-encoding description (engine/describeModel.ts) and, for a config.json the
 * engine cannot compute exactly as HF, every problem naming its key, as config problems. Reads one
 * small file. Must never throw for bad input: a model that cannot be found is reported by
 * modelParallelProblems, so it gives no problem here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfigProblem } from '../config/ConfigError.js';
import { inspectModelConfig } from '../engine/describeModel.js';
import { resolveModelDir } from './trainWorkload.js';

export interface ModelFamilyReport {
  /** e.g. `llama, head_dim 128, rope llama3 x8 from 8192 (...), theta 5e5`; null with problems */
  description: string | null;
  problems: ConfigProblem[];
}

export function modelFamilyReport(modelSpec: string): ModelFamilyReport {
  let file: string;
  let json: unknown;
  try {
    file = join(resolveModelDir(modelSpec), 'config.json');
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return { description: null, problems: [] };
  }
  const r = inspectModelConfig(json);
  return {
    description: r.description,
    problems: r.problems.map((p) => ({
      key: p.key,
      ...(p.value !== undefined ? { value: p.value } : {}),
      message: p.message,
      fix: p.fix ?? 'the engine refuses what it cannot compute exactly as transformers does',
      source: file,
    })),
  };
}
