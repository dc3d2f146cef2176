/**
 * The chaos harness: runs a job under a fault plan (coordinator in this process, node agents and
 * ranks as local child processes: runOnce.ts; `up` itself for coordinator faults: runUpOnce.ts),
 * runs the fault-free reference when the plan expects recovery (its final weights and files are
 * shared between plans of the same job), analyses every fault (analyseFault.ts) and checks the
 * plan's guarantees (guarantees.ts). The job is assembled from the plan like a job file
 * (chaosJob.ts). Must never leave a process behind: leftovers are killed by pid (and the
 * guarantee fails).
 */
import { join, resolve } from 'node:path';
import type { JobResult } from '../../actors/coordinator/index.js';
import { withOutputDir } from '../../config/JobSpec.js';
import type { FlagOverride } from '../../config/parseJobArgs.js';
import { createLogger, type Logger } from '../../util/Logger.js';
import { cliEntry as defaultCliEntry } from '../../util/packageRoot.js';
import type { FaultPlan } from '../FaultPlan.js';
import { analyseFault, type FaultOutcome } from './analyseFault.js';
import { chaosJob, chaosJobDocument, chaosJobFlags } from './chaosJob.js';
import { COORDINATOR } from '../FaultPlan.js';
import { checkGuarantees, type Guarantee, type ReferenceRun } from './guarantees.js';
import { runOnce, type FaultCorruption } from './runOnce.js';
import { runUpOnce } from './runUpOnce.js';

export type { FaultOutcome } from './analyseFault.js';
export type { Guarantee, ReferenceRun } from './guarantees.js';
export { ChaosUnavailable } from './runOnce.js';

export interface ChaosRunOptions {
  plan: FaultPlan;
  /** the harness owns `<outputDir>/fault` and `<outputDir>/reference` (emptied first) */
  outputDir: string;
  /** overrides the plan's workload */
  workload?: string;
  /** job config flags on top of the plan's `job` (parseJobArgs), and --adjust-lr */
  overrides?: readonly FlagOverride[];
  adjustLr?: number;
  logger?: Logger;
  cliEntry?: string;
  /** fault-free outcomes by job config, shared between runs (tests, soak rounds) */
  referenceCache?: Map<string, ReferenceRun>;
  /** a probability trigger may miss this run (a soak round): it is not required to fire */
  allowUnfired?: boolean;
  /** overrides the plan's seed (soak rounds draw new steps and ranks) */
  seed?: number;
  /** the environment the agents and ranks get (default: this one without NODE_OPTIONS) */
  env?: NodeJS.ProcessEnv;
}

export interface ChaosReport {
  plan: string;
  ok: boolean;
  workload: string;
  world: number;
  result: JobResult;
  reference: ReferenceRun | null;
  faults: FaultOutcome[];
  guarantees: Guarantee[];
  leftovers: number[];
  corruptions: FaultCorruption[];
  /** the job's checkpoint interval: a restart redoes at most this many steps per lost checkpoint */
  saveSteps: number;
  wallMs: number;
  outputDir: string;
}

/** Runs the plan and checks every guarantee. */
export async function runChaos(o: ChaosRunOptions): Promise<ChaosReport> {
  const t0 = Date.now();
  const plan = o.seed === undefined ? o.plan : { ...o.plan, seed: o.seed };
  const logger = o.logger ?? createLogger('silent');
  const workload = o.workload ?? plan.workload ?? 'synthetic';
  const hosts = plan.hosts ?? [{ host: 'localhost', slots: 2 }];
  const world = hosts.reduce((a, h) => a + h.slots, 0);
  const out = resolve(o.outputDir);
  const env = { ...(o.env ?? process.env) };
  delete env.NODE_OPTIONS;
  const jobOptions = { name: plan.name, workload, planJob: plan.job, overrides: o.overrides, adjustLr: o.adjustLr, world };
  const job = chaosJob(jobOptions);
  // one math thread per rank: the ranks share this machine's cores
  if (workload === 'train') env.ULYSSES_THREADS ??= '1';
  // the ranks' own progress lines would drown the report: warnings and errors only, unless asked
  env.ULYSSES_LOG_LEVEL ??= logger.level === 'silent' ? 'warn' : logger.level;
  const common = { plan, hosts, workload, logger, cliEntry: o.cliEntry ?? defaultCliEntry(), env, document: { keys: chaosJobDocument(jobOptions), flags: chaosJobFlags(jobOptions) } };

  const runner = plan.faults.some((f) => COORDINATOR.has(f.kind)) ? runUpOnce : runOnce;
  const run = await runner({ ...common, faults: plan.faults, job: withOutputDir(job, join(out, 'fault')) });
  try {
    let reference: ReferenceRun | null = null;
    if (plan.expect === 'recover') {
      // cluster settings (timeouts, heartbeats) never change the math: runs differing only there share a reference
      const key = JSON.stringify({ workload, hosts, config: { ...job.config, cluster: undefined, output_dir: undefined }, synthetic: job.synthetic });
      reference = o.referenceCache?.get(key) ?? null;
      if (!reference) {
        const ref = await runOnce({ ...common, faults: [], job: withOutputDir(job, join(out, 'reference')) });
        if (ref.result.ok) {
          reference = { hashes: ref.result.finalHashes, files: ref.files };
          o.referenceCache?.set(key, reference);
        } else reference = { hashes: [], files: {} };
        run.leftovers.push(...ref.leftovers);
        run.leftoverNames.push(...ref.leftoverNames);
      }
    }

    const faults = plan.faults.map((f) => analyseFault(f, run, plan.expect === 'absorb'));
    const guarantees = await checkGuarantees(plan, run, reference, faults, job.cluster.maxRestarts, world, { allowUnfired: o.allowUnfired });
    return {
      plan: plan.name,
      ok: guarantees.every((g) => g.ok),
      workload,
      world,
      result: run.result,
      reference,
      faults,
      guarantees,
      leftovers: run.leftovers,
      corruptions: run.corruptions,
      saveSteps: job.config.save_steps,
      wallMs: Date.now() - t0,
      outputDir: out,
    };
  } finally {
    run.cleanup();
  }
}
