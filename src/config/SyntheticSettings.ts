/**
 * The knobs of the synthetic workload (control-plane and fault-handling tests without the math
 * engine): `synthetic: { step_ms, fail_at_step, barrier_steps, diverge_at_step }` in a chaos
 * plan's job, or `up --synthetic-step-ms N --synthetic-fail-at-step N`. Not job config keys: a
 * training job never has them. Declares their defaults (the only place) and parses a partial
 * mapping into the full typed value, naming every bad key.
 */
import type { ConfigProblem } from './ConfigError.js';

export interface SyntheticSettings {
  /** how long one step sleeps (ms) */
  step_ms: number;
  /** the last rank of the first attempt fails at this step (-1: never) */
  fail_at_step: number;
  /** every rank meets at a store barrier every N steps (0: never) */
  barrier_steps: number;
  /** the last rank reports a different policy decision from this step on (-1: never) */
  diverge_at_step: number;
}

export const SYNTHETIC_DEFAULTS: Readonly<SyntheticSettings> = { step_ms: 50, fail_at_step: -1, barrier_steps: 0, diverge_at_step: -1 };

const KEYS = Object.keys(SYNTHETIC_DEFAULTS) as (keyof SyntheticSettings)[];

/** A mapping of some knobs (numbers) into the full settings; problems for anything else. */
export function parseSyntheticSettings(raw: unknown, source: string, problems: ConfigProblem[]): SyntheticSettings {
  const out: SyntheticSettings = { ...SYNTHETIC_DEFAULTS };
  if (raw === undefined || raw === null) return out;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push({ source, key: 'synthetic', value: raw, message: 'must be a mapping', fix: `write synthetic: { ${KEYS.map((k) => `${k}: N`).join(', ')} }` });
    return out;
  }
  for (const [k, v] of Object.entries(raw)) {
    if (!(KEYS as string[]).includes(k)) problems.push({ source, key: `synthetic.${k}`, message: 'unknown key', fix: `use ${KEYS.join(', ')}` });
    else if (!Number.isInteger(v)) problems.push({ source, key: `synthetic.${k}`, value: v, message: 'must be a whole number', fix: 'e.g. 20' });
    else out[k as keyof SyntheticSettings] = v as number;
  }
  return out;
}
