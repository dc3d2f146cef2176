/**
 * The job a fault plan runs: the harness's short defaults, under the plan's `job:` keys, under
 * the command line's flags (parsed as `up` parses them), resolved through the config layer
 * exactly like a job file (config/resolveJobDocument.ts), so the ranks receive the same typed
 * job that `up` gives them.
 * The synthetic workload's knobs mean nothing to the training loop and are dropped for it (a
 * plan may be run with --workload train). Pure apart from the config layer.
 */
import type { ResolvedJob } from '../../config/loadJobConfig.js';
import type { FlagOverride } from '../../config/parseJobArgs.js';
import { resolveJobDocument } from '../../config/resolveJobDocument.js';

/** Defaults that keep a chaos job short; the plan's `job` and the command line override them. */
export function defaultChaosJob(workload: string): Record<string, unknown> {
  const cluster = { heartbeat_interval_s: 0.25, heartbeat_miss_limit: 3, max_restarts: 3, restart_window_s: 120, shutdown_grace_s: 1, rendezvous_timeout_s: 60, step_timeout_s: 60, startup_grace_s: 20 };
  // a barrier every step keeps the synthetic ranks in lockstep, like the collectives of a real step
  if (workload === 'synthetic') return { max_steps: 16, save_steps: 4, synthetic: { step_ms: 40, barrier_steps: 1 }, cluster };
  // train: the tiny model on the built-in recall task, short sequences, checkpoints every 2 steps
  return {
    model_name_or_path: 'tiny', stage: 'sft', finetuning_type: 'full', dataset: 'builtin:recall', cutoff_len: 130, max_samples: 32,
    logging_steps: 1, save_steps: 2, max_steps: 8, learning_rate: 5.0e-3, lr_scheduler_type: 'cosine', warmup_steps: 2, sequence_parallel_size: 2,
    cluster: { ...cluster, heartbeat_interval_s: 0.5, heartbeat_miss_limit: 4, collective_timeout_s: 60, step_timeout_s: 120 },
  };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isObj(v) && isObj(prev) ? deepMerge(prev, v) : v;
  }
  return out;
}

export interface ChaosJobOptions {
  name: string;
  workload: string;
  planJob: Record<string, unknown>;
  overrides?: readonly FlagOverride[];
  adjustLr?: number;
  world: number;
}

/** The job's keys before resolution: the harness's defaults under the plan's job (what a job file of it holds). */
export function chaosJobDocument(o: ChaosJobOptions): Record<string, unknown> {
  const doc = deepMerge(defaultChaosJob(o.workload), o.planJob);
  if (o.workload !== 'synthetic') delete doc.synthetic;
  return doc;
}

/** The command-line flags of the overrides and --adjust-lr, as `up` takes them. */
export function chaosJobFlags(o: ChaosJobOptions): string[] {
  const flags = (o.overrides ?? []).flatMap((f) => (f.value === true ? [`--${f.key}`] : [`--${f.key}`, String(f.value)]));
  return o.adjustLr === undefined ? flags : [...flags, '--adjust-lr', String(o.adjustLr)];
}

/** defaults < the plan's job < flags (then --adjust-lr), resolved for `world` ranks. */
export function chaosJob(o: ChaosJobOptions): ResolvedJob {
  return resolveJobDocument(chaosJobDocument(o), { name: `${o.name}.yaml`, worldSize: o.world, overrides: o.overrides, adjustLr: o.adjustLr });
}
