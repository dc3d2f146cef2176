/**
 * `ulysses-actors rank`: a rank process, started by its node agent (environment ULYSSES_*). The
 * composition root of a rank: the workload registry and, when the chaos harness set a fault plan
 * (ULYSSES_CHAOS), the plan's hooks go into the rank runtime from here.
 */
import { rankEnvFromProcess, RankEnvError, runRank } from '../../actors/rank/RankRuntime.js';
import { CHAOS_ENV } from '../../chaos/chaosEnv.js';
import { createLogger } from '../../util/Logger.js';
import { UsageError } from '../UsageError.js';
import { workloads } from '../workloads.js';

export async function rankCommand(_argv: string[]): Promise<number> {
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
