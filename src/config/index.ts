/** The job configuration layer: schema, loading with precedence, DeepSpeed JSON, hostfiles, the typed job every process shares. Re-exports only: importing it must never read files or the environment. */
export { ConfigError, formatProblem, type ConfigProblem } from './ConfigError.js';
export type { JobConfig } from './JobConfig.js';
export { jobSpecOf, wireJobOf, withOutputDir, toPolicyConfig, type JobSpec, type WireJob } from './JobSpec.js';
export { clusterSettingsOf, type ClusterSettings, type SshOptions } from './ClusterSettings.js';
export { SYNTHETIC_DEFAULTS, parseSyntheticSettings, type SyntheticSettings } from './SyntheticSettings.js';
export { parseJobSpec } from './parseJobSpec.js';
export { loadJobConfig, formatIgnored, keyLine, type LoadJobConfigOptions, type ResolvedJob, type IgnoredKey } from './loadJobConfig.js';
export { parseJobArgs, type FlagOverride, type ParsedJobArgs, type CommandFlagKind } from './parseJobArgs.js';
export { LEAVES, LEAF_BY_PATH, envName, type LeafSpec } from './schema.js';
export { IGNORED_KEYS, UNSUPPORTED_KEYS } from './ignoredKeys.js';
export { parseHostfile, loadHostfile, defaultHosts, selectHosts, placeRanks, worldSizeOf, type HostEntry, type RankPlacement } from './hostfile.js';
export { resolveJob, localHostsForJob, type ResolveJobOptions, type ResolvedRun } from './resolveJob.js';
export { DEFAULT_JOB_NAME, DEFAULT_JOB_YAML } from './defaultJob.js';
export { resolveJobDocument } from './resolveJobDocument.js';
