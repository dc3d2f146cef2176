/**
 * JobSpec: the one typed value of a job that every process of a run works from: the resolved
 * config, the gradient policy in the statechart's shape, the runtime cluster settings and, for
 * the synthetic workload only, its knobs. `up` and the chaos harness build it once (jobSpecOf
 * over a resolved config); it travels to node agents and ranks in `peer.welcome` as its config
 * and knobs (wireJobOf) and is parsed back there (parseJobSpec.ts), deriving the policy and the
 * cluster settings with the same functions. Pure; must never re-default a value.
 */
import type { PolicyConfig } from '../statecharts/policyConfig.js';
import { clusterSettingsOf, type ClusterSettings } from './ClusterSettings.js';
import type { JobConfig } from './JobConfig.js';
import type { SyntheticSettings } from './SyntheticSettings.js';

export interface JobSpec {
  config: JobConfig;
  /** the gradient_policy section in the statechart's own shape */
  policy: PolicyConfig;
  cluster: ClusterSettings;
  /** only for the synthetic workload (tests of the control plane) */
  synthetic?: SyntheticSettings;
}

/** What `peer.welcome` carries: the parts the others are derived from. */
export interface WireJob {
  config: JobConfig;
  synthetic?: SyntheticSettings;
}

export function jobSpecOf(config: JobConfig, synthetic?: SyntheticSettings): JobSpec {
  return { config, policy: toPolicyConfig(config.gradient_policy), cluster: clusterSettingsOf(config.cluster), ...(synthetic ? { synthetic } : {}) };
}

export function wireJobOf(job: JobSpec): WireJob {
  return { config: job.config, ...(job.synthetic ? { synthetic: job.synthetic } : {}) };
}

/** The same job writing to another directory (`up` and the chaos harness make it absolute). */
export function withOutputDir(job: JobSpec, outputDir: string): JobSpec {
  return { ...job, config: { ...job.config, output_dir: outputDir } };
}

export function toPolicyConfig(g: JobConfig['gradient_policy']): PolicyConfig {
  return {
    enabled: g.enabled,
    vanishing: {
      threshold: g.vanishing.threshold,
      exitThreshold: g.vanishing.exit_threshold,
      noiseStd: g.vanishing.noise_std,
      scaleThreshold: g.vanishing.scale_threshold,
      scaleFactor: g.vanishing.scale_factor,
      lrBoost: g.vanishing.lr_boost,
    },
    lateStage: {
      startFraction: g.late_stage.start_fraction,
      vanishingThreshold: g.late_stage.vanishing_threshold,
      exitThreshold: g.late_stage.exit_threshold,
      noiseStd: g.late_stage.noise_std,
      scaleThreshold: g.late_stage.scale_threshold,
      scaleFactor: g.late_stage.scale_factor,
    },
    explode: { threshold: g.explode.threshold, clipNorm: g.explode.clip_norm },
    centralize: g.centralize,
    nonfinitePatience: g.nonfinite_patience,
  };
}
