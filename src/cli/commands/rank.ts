/**
 * `ulysses-actors rank`: a rank process, started by its node agent (environment ULYSSES_*). The
 * composition root of a rank: the workload registry and, when the chaos harness set a fault plan
 * (ULYSSES_CHAOS), the plan's hooks go into the rank runtime from here. `rank --standby` is a warm
 * standby (actors/StandbyRanks.ts): it loads the code first and takes its environment from the one
 * line its agent writes on stdin.
 */
import { rankEnvFromProcess, RankEnvError, runRank } from '../../actors/rank/RankRuntime.js';
import { CHAOS_ENV } from '../../chaos/chaosEnv.js';
import { createLogger } from '../../util/Logger.js';
import { UsageError } from '../UsageError.js';
import { preloadWorkloads, workloads } from '../workloads.js';
import { readStandbyAssignment, StandbyAssignmentError } from '../../actors/rank/standbyAssignment.js';

export async function rankCommand(argv: string[]): Promise<number> {
  if (argv[0] === '--standby') {
    // a warm standby: load everything a rank needs, then wait for the rank this process becomes
    await preloadWorkloads();
    let a;
    try {
      a = await readStandbyAssignment(process.stdin);
    } catch (e) {
      if (e instanceof StandbyAssignmentError) throw new UsageError(e.message);
      throw e;
    }
    if (a === null) return 0;
    Object.assign(process.env, a.env);
    return rankCommand(a.args);
  }
  let env;
  try {
    env = rankEnvFromProcess();
  } catch (e) {
    if (e instanceof RankEnvError) throw new UsageError(e.message);
    throw e;
  }
  const logger = createLogger(env.logLevel, undefined, `rank${env.rank}`);
  // the fault machinery loads only under a plan: a plain rank starts as fast as it can
  const faults = process.env[CHAOS_ENV] ? ((await import('../../chaos/RankChaos.js')).rankChaosFromEnv(process.env, env.rank, env.incarnation, logger) ?? undefined) : undefined;
  return runRank(env, workloads, { logger, faults });
}
