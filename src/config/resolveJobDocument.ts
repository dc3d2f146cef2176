/**
 * A job given as a mapping of keys (a chaos plan's `job:` over the harness's defaults, a test's
 * job) resolved exactly like a job file: the keys are written out as YAML and loaded by
 * loadJobConfig (defaults < these keys < flags, then --adjust-lr; the environment is not read),
 * and the synthetic workload's knobs (`synthetic:`) are parsed beside them. Every problem of both
 * goes into one ConfigError. Never reads a file.
 */
import { dump } from 'js-yaml';
import { ConfigError, type ConfigProblem } from './ConfigError.js';
import { loadJobConfig, type ResolvedJob } from './loadJobConfig.js';
import type { FlagOverride } from './parseJobArgs.js';
import { parseSyntheticSettings } from './SyntheticSettings.js';

export interface JobDocumentOptions {
  /** what messages call the document (`plan.yaml`) */
  name: string;
  worldSize?: number;
  /** command-line overrides (parseJobArgs) */
  overrides?: readonly FlagOverride[];
  adjustLr?: number;
}

export function resolveJobDocument(doc: Record<string, unknown>, o: JobDocumentOptions): ResolvedJob {
  const { synthetic, ...keys } = doc;
  const problems: ConfigProblem[] = [];
  const knobs = synthetic === undefined ? undefined : parseSyntheticSettings(synthetic, o.name, problems);
  let job: ResolvedJob | undefined;
  try {
    job = loadJobConfig({ configPath: o.name, configText: dump(keys), env: {}, worldSize: o.worldSize, overrides: o.overrides, adjustLr: o.adjustLr });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problems.push(...e.problems);
  }
  if (problems.length || !job) throw new ConfigError(problems);
  return knobs ? { ...job, synthetic: knobs } : job;
}
