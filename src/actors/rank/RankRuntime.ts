/**
 * The rank process: joins the coordinator (DEALER, CURVE), receives the job configuration,
 * sends heartbeats carrying its step and phase, serves the workload a rendezvous store, and
 * reports steps, transitions, checkpoints, success or failure. It aborts itself when the
 * coordinator asks, on SIGTERM, and when the coordinator goes silent (no orphaned ranks).
 * Exit codes: 0 done or aborted on request, 1 failed, 2 bad environment.
 * Its lifecycle is the rank statechart (src/statecharts/rankLifecycle.ts).
 */
import { hostname } from 'node:os';
import { createActor } from 'xstate';
import { readJobKeys } from '../../transport/keys.js';
import { DealerEndpoint } from '../../transport/ZmqEndpoints.js';
import type { Frame } from '../../transport/FrameCodec.js';
import { createLogger, type Logger, type LogLevel } from '../../util/Logger.js';
import { rankLifecycleMachine } from '../../statecharts/rankLifecycle.js';
import { KvClient } from './KvClient.js';
import type { Transport } from '../../transport/Transport.js';
import { rankChaosFromEnv } from '../../chaos/RankChaos.js';
import type { Workload, WorkloadContext } from './Workload.js';

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

export class RankEnvError extends Error {}

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
    logLevel: (env.ULYSSES_LOG_LEVEL as LogLevel) ?? 'info',
  };
}

interface ClusterTiming {
  heartbeatIntervalMs: number;
  missLimit: number;
  welcomeTimeoutMs: number;
  rendezvousTimeoutMs: number;
}

function timingFrom(config: Record<string, unknown> | undefined): ClusterTiming {
  const c = (config?.cluster ?? {}) as Record<string, unknown>;
  const num = (v: unknown, d: number) => (typeof v === 'number' && v > 0 ? v : d);
  return {
    heartbeatIntervalMs: num(c.heartbeat_interval_s, 1) * 1000,
    missLimit: num(c.heartbeat_miss_limit, 3),
    welcomeTimeoutMs: 30_000,
    rendezvousTimeoutMs: num(c.rendezvous_timeout_s, 120) * 1000,
  };
}

export async function runRank(env: RankEnv, workloads: Record<string, Workload>, logger?: Logger): Promise<number> {
  const log = logger ?? createLogger(env.logLevel, undefined, `rank${env.rank}`);
  const workload = workloads[env.workload];
  if (!workload) {
    log.error(`unknown workload '${env.workload}'`, { known: Object.keys(workloads) });
    return 2;
  }
  const keys = await readJobKeys(env.keyFile);
  const ep = new DealerEndpoint({ keys, logger: log, role: 'rank', index: env.rank, incarnation: env.incarnation });
  // a fault plan (ulysses-actors chaos) wraps the control link in its fault proxy; else a no-op
  const chaos = rankChaosFromEnv(process.env, env.rank, env.incarnation, log);
  const link: Transport = chaos ? chaos.wrap(ep) : ep;
  const life = createActor(rankLifecycleMachine, { input: { rank: env.rank, incarnation: env.incarnation } }).start();
  const abort = new AbortController();
  let abortedBy: 'coordinator' | 'signal' | 'orphaned' | null = null;
  let step = 0;
  let phase = 'joining';
  let busy = false;
  let lastFromCoord = Date.now();
  let welcome: Frame | null = null;
  let welcomeResolve: (() => void) | null = null;

  link.onFrame((f) => {
    lastFromCoord = Date.now();
    if (f.type === 'peer.welcome') {
      welcome = f;
      welcomeResolve?.();
    } else if (f.type === 'job.command' && f.body.command === 'abort') {
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

  ep.connect(env.coordUrl);
  link.send('coord', 'peer.hello', { role: 'rank', host: hostname(), pid: process.pid, rank: env.rank, incarnation: env.incarnation });
  let welcomeTimer: NodeJS.Timeout | undefined;
  const gotWelcome = await new Promise<boolean>((resolve) => {
    welcomeResolve = () => resolve(true);
    if (welcome) resolve(true);
    welcomeTimer = setTimeout(() => resolve(false), 30_000);
  });
  clearTimeout(welcomeTimer);
  if (!gotWelcome) {
    log.error('no welcome from the coordinator within 30 s', { coord: env.coordUrl });
    await ep.close();
    return 1;
  }
  const config = ((welcome as Frame | null)?.body.config ?? {}) as Record<string, unknown>;
  const timing = timingFrom(config);
  chaos?.configure(config);
  life.send({ type: 'rank.joined' });

  const beat = () => {
    link.send('coord', 'peer.heartbeat', { step, phase, busy });
    if (Date.now() - lastFromCoord > timing.heartbeatIntervalMs * (timing.missLimit + 2)) {
      // the coordinator is gone: stop rather than become an orphan
      if (!abort.signal.aborted) log.error('lost the coordinator: aborting');
      abortedBy ??= 'orphaned';
      abort.abort(new Error('lost the coordinator'));
    }
  };
  // the first beat goes out now: until it arrives the coordinator only has the startup grace, so
  // a rank that froze within its first interval would go unnoticed for the whole grace period
  beat();
  const hb = setInterval(beat, timing.heartbeatIntervalMs);

  const kv = new KvClient(link, `a${env.incarnation}/`, timing.rendezvousTimeoutMs);
  const ctx: WorkloadContext = {
    rank: env.rank,
    world: env.world,
    localRank: env.localRank,
    localRanks: env.localRanks,
    incarnation: env.incarnation,
    config,
    logger: log,
    signal: abort.signal,
    store: kv,
    chaos: chaos ?? undefined,
    reportStep: (r) => {
      step = r.step;
      link.send('coord', 'rank.step.done', { ...r });
    },
    reportTransition: (t) => link.send('coord', 'rank.policy.transition', { ...t }),
    reportCheckpoint: (c) => link.send('coord', 'rank.checkpoint.written', { ...c }),
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
    await chaos?.close();
    process.removeListener('SIGTERM', onSigterm);
    await ep.flush(1000);
    await new Promise((r) => setTimeout(r, 50)); // let ZeroMQ's I/O thread put the last frames on the wire
    await ep.close();
    life.stop();
  }
  return code;
}
