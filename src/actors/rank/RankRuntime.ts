/**
 * The rank process: joins the coordinator (DEALER, CURVE), receives the job with the welcome and
 * parses it once (config/parseJobSpec.ts), sends heartbeats carrying its step and phase, serves
 * the workload a rendezvous store, and reports steps, transitions, checkpoints, success or
 * failure. A fault plan's hooks, when there is one, are handed in by the rank command.
 * A silent coordinator may only be paused: the rank trains on through `cluster.coordinator_grace_s`
 * (its step reports kept and replayed when the coordinator is back: ReportChannel.ts), and aborts
 * itself only beyond it (no orphaned ranks); it also aborts when the coordinator asks (leaving
 * at once if the workload is stuck in a native call) and on SIGTERM. Its final report waits for
 * the coordinator's receipt, within the grace.
 * Exit codes: 0 done or aborted on request, 1 failed (a restart may cure it), 2 bad environment,
 * 3 failed deterministically (failureClass.ts: a restart cannot cure it).
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
import { closeLink, coordinatorGraceMs, CoordinatorWatch, welcomeFrom, WELCOME_TIMEOUT_MS } from '../coordinatorLink.js';
import { DETERMINISTIC_EXIT_CODE, failureClassOf } from '../failureClass.js';
import { KvClient } from './KvClient.js';
import { ReportChannel } from './ReportChannel.js';

/** After the coordinator's abort the workload gets this long to unwind before the rank leaves anyway (a native collective waiting on a dead peer cannot be interrupted). */
export const ABORT_EXIT_MS = 500;

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
  /** this rank's host as the hostfile names it (the data plane's address); undefined: loopback */
  host?: string;
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
    ...(env.ULYSSES_HOST ? { host: env.ULYSSES_HOST } : {}),
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
  const reports = new ReportChannel(link);
  // set once the job (and its cluster settings) arrived with the welcome
  let watch: CoordinatorWatch | null = null;
  // once aborted, the workload gets ABORT_EXIT_MS to unwind before the rank leaves without it
  let abortedAt: Promise<'stuck'> | null = null;
  const leaveSoon = () => (abortedAt ??= new Promise((r) => setTimeout(() => r('stuck'), ABORT_EXIT_MS).unref()));

  link.onFrame((f) => {
    if (f.type === 'peer.heartbeat') reports.aggregated(f.body.step);
    else if (f.type === 'peer.ack') reports.acked(f.body.of);
    watch?.heard();
    if (f.type === 'job.command' && f.body.command === 'abort') {
      abortedBy ??= 'coordinator';
      life.send({ type: 'rank.abort', reason: 'coordinator' });
      abort.abort(new Error('aborted by the coordinator'));
      leaveSoon();
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

  const graceMs = coordinatorGraceMs(job.cluster);
  watch = new CoordinatorWatch(job.cluster, {
    silent: () => log.warn(`the coordinator is silent: training on for up to ${graceMs / 1000} s (cluster.coordinator_grace_s)`),
    back: (ms) => {
      const n = reports.replay();
      log.warn(`the coordinator is back after ${(ms / 1000).toFixed(1)} s${n ? `: ${n} step report(s) sent again` : ''}`);
    },
  });
  const beat = () => {
    link.send('coord', 'peer.heartbeat', { step, phase, busy });
    if (watch!.check() === 'lost' && !abort.signal.aborted) {
      // silent beyond the grace: the coordinator is gone; stop rather than become an orphan
      log.error(`lost the coordinator (silent for more than ${graceMs / 1000} s): aborting`);
      abortedBy ??= 'orphaned';
      abort.abort(new Error('lost the coordinator'));
      leaveSoon();
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
    ...(env.host !== undefined ? { host: env.host } : {}),
    job,
    logger: log,
    signal: abort.signal,
    store: kv,
    chaos: faults,
    reportStep: (r) => {
      step = r.step;
      reports.step(r);
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

  // a final report waits for the coordinator's receipt, through a pause but within the grace
  const final = { timeoutMs: graceMs, resendMs: Math.max(1000, 2 * job.cluster.heartbeatIntervalMs), signal: abort.signal };
  let code: number;
  try {
    life.send({ type: 'rank.rendezvous' });
    const running = workload(ctx);
    // leave without the workload when it is stuck after an abort (the coordinator restarts the group)
    const outcome = await Promise.race([running, new Promise<'stuck'>((r) => abort.signal.addEventListener('abort', () => void abortedAt?.then(r), { once: true }))]);
    if (outcome === 'stuck') {
      running.catch(() => undefined);
      log.info(`aborted while the workload was busy: leaving without it`, { by: abortedBy });
      code = abortedBy === 'orphaned' ? 1 : 0;
    } else {
      await reports.final('rank.done', { step: outcome.step, finalHash: outcome.finalHash, trained: outcome.trained, note: outcome.note }, final);
      life.send({ type: 'rank.finished' });
      code = 0;
    }
  } catch (e) {
    if (abort.signal.aborted && abortedBy !== 'orphaned') {
      log.debug('aborted', { by: abortedBy });
      code = 0;
    } else {
      const err = e as Error & { code?: string };
      const deterministic = failureClassOf(err.code) === 'deterministic';
      // a deterministic failure is printed once, by `up` (from this report); every other one here too
      if (deterministic) log.debug('rank failed', { error: err.message, code: err.code });
      else log.error('rank failed', { error: err.message, code: err.code });
      life.send({ type: 'rank.failed', reason: err.message });
      const delivered = await reports.final('rank.failed', { reason: deterministic ? err.message : (err.stack ?? err.message), code: err.code }, final);
      // undelivered, the exit report of the node agent is all the coordinator gets: name the error there
      if (deterministic && !delivered) log.error('rank failed', { error: err.message, code: err.code });
      code = deterministic ? DETERMINISTIC_EXIT_CODE : 1;
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
