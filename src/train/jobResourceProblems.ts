/**
 * The resource estimate of a job's model as `up` runs it before anything starts (resourceEstimate.ts):
 * resolves model_name_or_path, whose failure is left to the checks that report it.
 */
import type { ConfigProblem } from '../config/ConfigError.js';
import type { JobConfig } from '../config/JobConfig.js';
import { machineMemory, resourceProblems } from './resourceEstimate.js';
import { resolveModelDir } from './trainWorkload.js';

export function jobResourceProblems(c: JobConfig, ranksHere: number): ConfigProblem[] {
  let dir: string;
  try {
    dir = resolveModelDir(c.model_name_or_path);
  } catch {
    return [];
  }
  return resourceProblems(c, dir, ranksHere, machineMemory());
}
