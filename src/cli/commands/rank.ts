/** `ulysses-actors rank`: a rank process, started by its node agent (environment ULYSSES_*). */
import { rankEnvFromProcess, RankEnvError, runRank } from '../../actors/rank/RankRuntime.js';
import { workloads } from '../../actors/rank/workloads.js';
import { UsageError } from '../UsageError.js';

export async function rankCommand(_argv: string[]): Promise<number> {
  let env;
  try {
    env = rankEnvFromProcess();
  } catch (e) {
    if (e instanceof RankEnvError) throw new UsageError(e.message);
    throw e;
  }
  return runRank(env, workloads);
}
