/**
 * The rank process: joins the coordinator (DEALER, CURVE), receives the job with the welcome and
 * parses it once (config/parseJobSpec.ts), sends heartbeats carrying its step and phase, serves
 * the workload a rendezvous store, and reports steps, transitions, checkpoints, success or
 * failure. A fault plan's hooks, when there is one, are handed in by the rank command. It aborts itself when the
 * coordinator asks, on SIGTERM, and when the coordinator goes silent (no orphaned ranks).
 * Exit codes: 0 done or aborted on request, 1 failed, 2 bad environment.
 * Its lifecycle is the rank statechart (src/statecharts/rankLifecycle.ts).
 */
import { hostname } from 'node:os';
import { createActor } from 'xstate';
import { ConfigError } from '../../config/ConfigError.js';
import type { JobSpec } from '../../config/JobSpec.js';
import { parseJobSpec } from '../../config/parseJobSpec.js';
import { rankLifecycleMachine } from '../../statecharts/rankLifecycle.js';
import type { ChaosHooks } from '../../train/ChaosHooks.js';
import type { Workload, WorkloadContext } from '../../train/Workload.js';
import { readJobKeys } from '../../transport/keys.js';
import type { Transport } from '../../transport/Transport.js';
import { DealerEndpoint } from '../../transport/ZmqEndpoints.js';
import { createLogger, isLogLevel, type Logger, type LogLevel } from '../../util/Logger.js';
import { closeLink, coordinatorLost, welcomeFrom, WELCOME_TIMEOUT_MS } from '../coordinatorLink.js';
import { KvClient } from './KvClient.js';

export interface RankEnv {
  coordUrl: string;
  keyFile: string;
  rank: number;
  world: number;
  localRank: number;
  localRanks: number;
  incarnation: number;
  workload: string;
  logLevel: LogLevel;
}

/**
 * What a fault plan may do inside a rank (src/chaos/RankChaos.ts implements it; the rank command
 * builds it from the environment and hands it in): wrap the control link, learn the job, and
 * the hooks the workload calls.
 */
export interface RankFaults extends ChaosHooks {
  wrap(t: Transport): Transport;
  /** the job arrives with the welcome, after wrap() */
  configure(job: JobSpec): void;
  close(): Promise<void>;
}

export interface RankOptions {
  logger?: Logger;
  faults?: RankFaults;
}

export class RankEnvError extends Error {}

function logLevel(v: string | undefined): LogLevel {
  if (v === undefined || v === '') return 'info';
  if (!isLogLevel(v)) throw new RankEnvError(`ULYSSES_LOG_LEVEL must be one of debug, info, warn, error, silent, got '${v}'`);
  return v;
}
/** Reads the rank's environment (set by its node agent). */
export function rankEnvFromProcess(env: NodeJS.ProcessEnv = process.env): RankEnv {
  const need = (k: string) => {
    const v = env[k];
    if (v === undefined || v === '') throw new RankEnvError(`missing ${k} (a rank is started by its node agent, not by hand)`);
    return v;
  };
  const int = (k: string) => {
    const n = Number(need(k));
    if (!Number.isInteger(n) || n < 0) throw new RankEnvError(`${k} must be a non-negative integer, got '${env[k]}'`);
    return n;
  };
  return {
    coordUrl: need('ULYSSES_COORD'),
    keyFile: need('ULYSSES_JOB_KEY'),
    rank: int('ULYSSES_RANK'),
    world: int('ULYSSES_WORLD'),
    localRank: int('ULYSSES_LOCAL_RANK'),
    localRanks: int('ULYSSES_LOCAL_RANKS'),
    incarnation: int('ULYSSES_INCARNATION'),
    workload: env.ULYSSES_WORKLOAD ?? 'train',
    logLevel: logLevel(env.ULYSSES_LOG_LEVEL),
  };
}

export async function runRank(env: RankEnv, workloads: Record<string, Workload>, o: RankOptions = {}): Promise<number> {
  const log = o.logger ?? createLogger(env.logLevel, undefined, `rank${env.rank}`);
  const workload = workloads[env.workload];
  if (!workload) {
    log.error(`unknown workload '${env.workload}'`, { known: Object.keys(workloads) });
    return 2;
  }
  const keys = await readJobKeys(env.keyFile);
  const ep = new DealerEndpoint({ keys, logger: log, role: 'rank', index: env.rank, incarnation: env.incarnation });
  // a fault plan (ulysses-actors chaos) wraps the control link in its fault proxy
  const faults = o.faults;
  const link: Transport = faults ? faults.wrap(ep) : ep;
  const life = createActor(rankLifecycleMachine, { input: { rank: env.rank, incarnation: env.incarnation } }).start();
  const abort = new AbortController();
  let abortedBy: 'coordinator' | 'signal' | 'orphaned' | null = null;
  let step = 0;
  let phase = 'joining';
  let busy = false;
  let lastFromCoord = Date.now();

  link.onFrame((f) => {
    lastFromCoord = Date.now();
    if (f.type === 'job.command' && f.body.command === 'abort') {
      abortedBy ??= 'coordinator';
      life.send({ type: 'rank.abort', reason: 'coordinator' });
      abort.abort(new Error('aborted by the coordinator'));
    }
  });
  const onSigterm = () => {
    abortedBy ??= 'signal';
    life.send({ type: 'rank.abort', reason: 'SIGTERM' });
    abort.abort(new Error('SIGTERM'));
    // a native call (a collective waiting on a dead peer) cannot be interrupted: do not wait for it
    setTimeout(() => process.exit(143), 1000).unref();
  };
  process.once('SIGTERM', onSigterm);

  const welcomed = welcomeFrom(link);
  ep.connect(env.coordUrl);
  link.send('coord', 'peer.hello', { role: 'rank', host: hostname(), pid: process.pid, rank: env.rank, incarnation: env.incarnation });
  const welcome = await welcomed;
  const giveUp = async (flushMs: number) => {
    process.removeListener('SIGTERM', onSigterm);
    life.stop();
    await closeLink(ep, flushMs);
    return 1;
  };
  if (!welcome) {
    log.error(`no welcome from the coordinator within ${WELCOME_TIMEOUT_MS / 1000} s`, { coord: env.coordUrl });
    return giveUp(0);
  }
  // the job is parsed once, here: everything after this works from the typed value
  let job: JobSpec;
  try {
    job = parseJobSpec(welcome.job);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    log.error('the coordinator sent a malformed job', { error: e.message });
    link.send('coord', 'rank.failed', { reason: e.message, code: 'ERR_CONFIG' });
    return giveUp(1000);
  }
  faults?.configure(job);
  life.send({ type: 'rank.joined' });

  const beat = () => {
    link.send('coord', 'peer.heartbeat', { step, phase, busy });
    if (coordinatorLost(Date.now() - lastFromCoord, job.cluster)) {
      // the coordinator is gone: stop rather than become an orphan
      if (!abort.signal.aborted) log.error('lost the coordinator: aborting');
      abortedBy ??= 'orphaned';
      abort.abort(new Error('lost the coordinator'));
    }
  };
  // the first beat goes out now: until it arrives the coordinator only has the startup grace, so
  // a rank that froze within its first interval would go unnoticed for the whole grace period
  beat();
  const hb = setInterval(beat, job.cluster.heartbeatIntervalMs);

  const kv = new KvClient(link, `a${env.incarnation}/`);
  const ctx: WorkloadContext = {
    rank: env.rank,
    world: env.world,
    localRank: env.localRank,
    localRanks: env.localRanks,
    incarnation: env.incarnation,
    job,
    logger: log,
    signal: abort.signal,
    store: kv,
    chaos: faults,
    reportStep: (r) => {
      step = r.step;
      link.send('coord', 'rank.step.done', r);
    },
    reportTransition: (t) => link.send('coord', 'rank.policy.transition', t),
    reportCheckpoint: (c) => link.send('coord', 'rank.checkpoint.written', c),
    reportEval: (e) => link.send('coord', 'rank.eval.done', e),
    setPhase: (p, b = true) => {
      phase = p;
      busy = b;
      if (p === 'training') life.send({ type: 'rank.training' });
    },
  };

  let code: number;
  try {
    life.send({ type: 'rank.rendezvous' });
    const result = await workload(ctx);
    link.send('coord', 'rank.done', { step: result.step, finalHash: result.finalHash });
    life.send({ type: 'rank.finished' });
    code = 0;
  } catch (e) {
    if (abort.signal.aborted && abortedBy !== 'orphaned') {
      log.info('aborted', { by: abortedBy });
      code = 0;
    } else {
      const err = e as Error & { code?: string };
      log.error('rank failed', { error: err.message, code: err.code });
      link.send('coord', 'rank.failed', { reason: err.stack ?? err.message, code: err.code });
      life.send({ type: 'rank.failed', reason: err.message });
      code = 1;
    }
  } finally {
    clearInterval(hb);
    kv.close();
    await faults?.close();
    process.removeListener('SIGTERM', onSigterm);
    await closeLink(ep, 1000);
    life.stop();
  }
  return code;
}
