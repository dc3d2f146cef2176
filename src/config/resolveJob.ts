/**
 * One call from a command line to a checked job: parses the flags, reads the hostfile
 * (`--nodes`, with `--include`/`--exclude`), resolves the config with the world size known and
 * gathers every problem of all three into one ConfigError. Shared by `check-config` and `up` so
 * both accept exactly the same input. Never exits and never starts anything.
 */
import { ConfigError, type ConfigProblem } from './ConfigError.js';
import { defaultHosts, loadHostfile, placeRanks, selectHosts, worldSizeOf, type HostEntry, type RankPlacement } from './hostfile.js';
import { IGNORED_KEYS } from './ignoredKeys.js';
import type { JobConfig } from './JobConfig.js';
import { loadJobConfig, type IgnoredKey, type ResolvedJob } from './loadJobConfig.js';
import { parseJobArgs, type CommandFlagKind } from './parseJobArgs.js';
import { DEFAULT_JOB_NAME, DEFAULT_JOB_YAML } from './defaultJob.js';

export interface ResolveJobOptions {
  env: Readonly<Record<string, string | undefined>>;
  /** the command's own flags besides --nodes/--include/--exclude (e.g. { json: 'bool' }) */
  commandFlags?: Record<string, CommandFlagKind>;
  /**
   * Hosts when there is no --nodes: `up` runs this machine with one rank per SP slot; pass
   * undefined (check-config) to leave the world unknown.
   */
  defaultHosts?: (config: JobConfig) => HostEntry[];
}

export interface ResolvedRun {
  job: ResolvedJob;
  /** undefined when no hostfile was given and no default applies */
  hosts?: HostEntry[];
  ranks?: RankPlacement[];
  /** the command's own flags */
  command: Record<string, string | boolean>;
  /** every ignored key: from the file, the DeepSpeed JSON and the flags */
  ignored: IgnoredKey[];
}

export function resolveJob(argv: readonly string[], opts: ResolveJobOptions): ResolvedRun {
  const args = parseJobArgs(argv, { ...opts.commandFlags, nodes: 'string', include: 'string', exclude: 'string' });
  const problems: ConfigProblem[] = [...args.problems];
  let hosts: HostEntry[] | undefined;
  if (typeof args.command.nodes === 'string') {
    try {
      hosts = selectHosts(loadHostfile(args.command.nodes), {
        include: args.command.include as string | undefined,
        exclude: args.command.exclude as string | undefined,
      });
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(...e.problems);
    }
  } else if (args.command.include !== undefined || args.command.exclude !== undefined) {
    problems.push({ key: args.command.include !== undefined ? '--include' : '--exclude', message: 'needs a hostfile', fix: 'add --nodes hosts.txt' });
  }
  let job: ResolvedJob | undefined;
  try {
    job = loadJobConfig({
      // no job file: the embedded default job, resolved exactly like a user's YAML
      ...(args.configPath === undefined ? { configText: DEFAULT_JOB_YAML, configPath: DEFAULT_JOB_NAME } : { configPath: args.configPath }),
      env: opts.env,
      overrides: args.overrides,
      adjustLr: args.adjustLr,
      worldSize: hosts ? worldSizeOf(hosts) : undefined,
    });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problems.push(...e.problems);
  }
  if (problems.length || !job) throw new ConfigError(problems);
  if (!hosts && opts.defaultHosts) hosts = opts.defaultHosts(job.config);
  const ignored = [...job.ignored, ...args.ignored.map((i) => ({ key: i.key, reason: IGNORED_KEYS[i.key]!, source: `flag ${i.flag}` }))];
  return { job, hosts, ranks: hosts ? placeRanks(hosts) : undefined, command: args.command, ignored };
}

/** `up`'s rule without --nodes: this machine, one rank per sequence-parallel slot. */
export function localHostsForJob(config: JobConfig): HostEntry[] {
  return defaultHosts(config.sequence_parallel_size);
}
