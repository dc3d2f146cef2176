/**
 * The receiving end of the job that `peer.welcome` carries (JobSpec.ts): node agents and ranks
 * parse it here, once, into the same typed JobSpec the coordinator holds. Every key of the
 * schema must be present with a value its leaf accepts (the sender resolved them all: a missing
 * one means another build or a damaged frame), nothing else may be there, and the knobs of the
 * synthetic workload parse as they do in a plan. Throws one ConfigError naming every problem;
 * never fills in a default.
 */
import { ConfigError, type ConfigProblem } from './ConfigError.js';
import type { JobConfig } from './JobConfig.js';
import { jobSpecOf, type JobSpec } from './JobSpec.js';
import { LEAVES, LEAF_BY_PATH, SECTIONS, checkLeaf } from './schema.js';
import { parseSyntheticSettings, type SyntheticSettings } from './SyntheticSettings.js';

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

/** Keys that are nullable in a job file but always resolved (LLaMA-Factory's derived defaults). */
const RESOLVED = ['lora_alpha', 'packing'];

export function parseJobSpec(wire: unknown, source = 'peer.welcome'): JobSpec {
  const problems: ConfigProblem[] = [];
  if (!isMap(wire) || !isMap(wire.config)) throw new ConfigError([{ source, key: 'job', message: 'must be a map holding the resolved config' }], 'malformed job');
  const config = wire.config;
  const shaped = isJobConfig(config, source, problems);
  let synthetic: SyntheticSettings | undefined;
  if (wire.synthetic !== undefined && wire.synthetic !== null) synthetic = parseSyntheticSettings(wire.synthetic, source, problems);
  for (const k of Object.keys(wire)) if (k !== 'config' && k !== 'synthetic') problems.push({ source, key: `job.${k}`, message: 'unknown field' });
  if (problems.length || !shaped) throw new ConfigError(problems, 'malformed job');
  return jobSpecOf(config, synthetic);
}

/**
 * Whether `raw` has the JobConfig shape: every leaf present with a value its leaf accepts (the
 * derived keys resolved), nothing else; what is wrong goes to `problems`.
 */
export function isJobConfig(raw: Record<string, unknown>, source: string, problems: ConfigProblem[]): raw is Record<string, unknown> & JobConfig {
  const before = problems.length;
  for (const l of LEAVES) {
    const v = l.path.split('.').reduce<unknown>((o, k) => (isMap(o) ? o[k] : undefined), raw);
    if (v === undefined) problems.push({ source, key: l.path, message: 'missing' });
    else if (v === null && RESOLVED.includes(l.path)) problems.push({ source, key: l.path, message: 'must be resolved' });
    else {
      const bad = checkLeaf(l, v);
      if (bad) problems.push({ source, key: l.path, value: v, message: bad.message });
    }
  }
  const strays = (o: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(o)) {
      const path = prefix + k;
      if (SECTIONS.has(path) && isMap(v)) strays(v, path + '.');
      else if (!LEAF_BY_PATH.has(path)) problems.push({ source, key: path, message: 'unknown key' });
    }
  };
  strays(raw, '');
  return problems.length === before;
}
