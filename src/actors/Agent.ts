/**
 * The node agent: one per host. It joins the coordinator (whose welcome carries the job: its
 * heartbeat settings are parsed from it), starts the rank processes of its host when told to,
 * watches them, and reports every exit with its exit code, signal and the tail of stderr. It
 * owns the ranks' process lifecycle (spawn, signals, the shutdown ladder). On start it sweeps what
 * dead jobs left on this host (sweepStale.ts). With cluster.standby_ranks it keeps a warm standby
 * process per rank (StandbyRanks.ts) so a restarted group skips the process start-up. It never
 * outlives the coordinator: without a welcome, when its lifeline closes (the launcher or `up` is gone: its ranks are stopped at once),
 * or when the coordinator stays silent beyond `cluster.coordinator_grace_s`, it stops its ranks
 * and exits; a shorter silence (a paused coordinator) costs nothing.
 */
import { constants, hostname } from 'node:os';
import type { ClusterSettings } from '../config/ClusterSettings.js';
import { ConfigError } from '../config/ConfigError.js';
import { parseJobSpec } from '../config/parseJobSpec.js';
import { readJobKeys } from '../transport/keys.js';
import { DealerEndpoint } from '../transport/ZmqEndpoints.js';
import { createLogger, type Logger } from '../util/Logger.js';
import { closeLink, coordinatorGraceMs, CoordinatorWatch, WELCOME_TIMEOUT_MS } from './coordinatorLink.js';
import { ProcessChild } from './ProcessChild.js';
import { StandbyRanks } from './StandbyRanks.js';
import { sweepDeadOwners } from './sweepStale.js';

/** A rank's standby starts this long after the rank, so the two do not share the start-up's cores. */
const STANDBY_DELAY_MS = 1000;

export interface AgentOptions {
  coordUrl: string;
  keyFile: string;
  hostIndex: number;
  slots: number;
  logger?: Logger;
  /** how to start a rank; default: this package's CLI `rank` command with this Node.js */
  rankCommand?: { command: string; args: string[] };
  /** path of the compiled CLI entry (src/util/cliEntry.ts) */
  cliEntry: string;
  /**
   * When this stream ends the agent stops its ranks and exits: the ssh launcher keeps the
   * session's stdin open for the job's lifetime, so a lost connection or a dead `up` never
   * leaves ranks behind on the remote host.
   */
  lifeline?: NodeJS.ReadableStream;
}

const isSignal = (s: string): s is NodeJS.Signals => s in constants.signals;

interface RankProc {
  child: ProcessChild;
  incarnation: number;
}

export async function runAgent(o: AgentOptions): Promise<number> {
  const log = o.logger ?? createLogger('info', undefined, `agent${o.hostIndex}`);
  const swept = sweepDeadOwners();
  if (swept.length) log.info('removed what dead jobs left on this host', { removed: swept });
  const keys = await readJobKeys(o.keyFile);
  const ep = new DealerEndpoint({ keys, logger: log, role: 'agent', index: o.hostIndex, incarnation: 0 });
  const ranks = new Map<number, RankProc>();
  const rankCmd = o.rankCommand ?? { command: process.execPath, args: [o.cliEntry, 'rank'] };
  // the job's settings arrive with the welcome; until then the agent only waits for it
  let cluster: ClusterSettings | null = null;
  let watch: CoordinatorWatch | null = null;
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((r) => (finish = r));

  /** A rank process of this host (`lifeline`: a standby, told its rank later over stdin). */
  const rankProcess = (rank: number, env: NodeJS.ProcessEnv, args: string[], lifeline = false) =>
    new ProcessChild({
      command: rankCmd.command,
      args: [...rankCmd.args, ...args],
      env,
      // the coordinator has already asked the rank to abort over the control plane
      requestAbort: () => {},
      abortWaitMs: 2000,
      graceMs: 3000,
      killWaitMs: 3000,
      lifeline,
      onOutput: (stream, chunk) => (stream === 'stderr' ? process.stderr : process.stdout).write(chunk),
      onUnkillable: (pid) => log.error('a rank process could not be killed', { rank, pid }),
    });
  // what every rank of this agent is told, whether started afresh or handed to a standby
  const linkEnv = { ULYSSES_COORD: o.coordUrl, ULYSSES_JOB_KEY: o.keyFile };
  // warm standbys (cluster.standby_ranks) only for this package's own rank command, which knows --standby
  let standbys: StandbyRanks | null = null;

  /** `now`: nobody asked the ranks to abort (the coordinator is gone): skip straight to the signals */
  const stopAll = async (reason: string, now = false) => {
    await Promise.all([...ranks.values()].map((r) => r.child.stop(reason, now)).concat(standbys ? [standbys.close()] : []));
  };

  ep.onFrame((f) => {
    watch?.heard();
    switch (f.type) {
      case 'peer.welcome': {
        try {
          cluster = parseJobSpec(f.body.job).cluster;
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          log.error('the coordinator sent a malformed job: stopping', { error: e.message });
          void stopAll('malformed job').then(() => finish(1));
          break;
        }
        startHeartbeats(cluster);
        if (cluster.standbyRanks && !o.rankCommand && !standbys) {
          standbys = new StandbyRanks((rank) => rankProcess(rank, { ...process.env, ...linkEnv }, ['--standby'], true), STANDBY_DELAY_MS);
        }
        break;
      }
      case 'agent.spawn': {
        const { rank, incarnation } = f.body;
        const prev = ranks.get(rank);
        if (prev?.child.alive) {
          log.error('asked to start a rank that is still running; stopping the old one first', { rank });
          void prev.child.stop('replaced');
        }
        const env = { ...f.body.env, ...linkEnv };
        const child = standbys?.assign(rank, { env, args: f.body.args }) ?? rankProcess(rank, { ...process.env, ...env }, f.body.args);
        ranks.set(rank, { child, incarnation });
        if (child.pid !== undefined) ep.send('coord', 'agent.rank.started', { rank, incarnation, pid: child.pid });
        void child.exited.then((exit) => {
          ep.send('coord', 'agent.rank.exited', {
            rank,
            incarnation,
            pid: child.pid ?? -1,
            code: exit.code ?? undefined,
            signal: exit.signal ?? undefined,
            stderrTail: child.stderrTail().slice(-8192),
          });
        });
        break;
      }
      case 'agent.stop': {
        const r = ranks.get(f.body.rank);
        if (r && r.incarnation === f.body.incarnation) void r.child.stop(f.body.reason);
        break;
      }
      case 'agent.signal': {
        const r = ranks.get(f.body.rank);
        const sig = f.body.signal;
        if (!isSignal(sig)) log.warn('asked to send an unknown signal', { rank: f.body.rank, signal: sig });
        else if (r?.child.pid !== undefined && r.child.alive) {
          try {
            process.kill(r.child.pid, sig);
          } catch (e) {
            log.warn('signal failed', { rank: f.body.rank, signal: sig, error: (e as Error).message });
          }
        }
        break;
      }
      case 'job.command':
        if (f.body.command === 'shutdown') void stopAll('job finished').then(() => finish(0));
        break;
      default:
        break;
    }
  });

  ep.connect(o.coordUrl);
  ep.send('coord', 'peer.hello', { role: 'agent', host: hostname(), pid: process.pid, slots: o.slots });
  // heartbeats start once the welcome tells the job's interval
  let hb: NodeJS.Timeout | undefined;
  function startHeartbeats(c: ClusterSettings) {
    clearInterval(hb);
    const graceMs = coordinatorGraceMs(c);
    watch = new CoordinatorWatch(c, {
      silent: () => log.warn(`the coordinator is silent: keeping this host's ranks for up to ${graceMs / 1000} s (cluster.coordinator_grace_s)`),
      back: (ms) => log.warn(`the coordinator is back after ${(ms / 1000).toFixed(1)} s`),
    });
    let lost = false;
    const beat = () => {
      ep.send('coord', 'peer.heartbeat', { step: 0, phase: 'agent', busy: false });
      if (!lost && watch!.check() === 'lost') {
        lost = true;
        log.error(`lost the coordinator (silent for more than ${graceMs / 1000} s): stopping this host's ranks`);
        void stopAll('lost the coordinator', true).then(() => finish(1));
      }
    };
    beat();
    hb = setInterval(beat, c.heartbeatIntervalMs);
  }
  const welcomeTimer = setTimeout(() => {
    if (cluster) return;
    log.error(`no welcome from the coordinator within ${WELCOME_TIMEOUT_MS / 1000} s`, { coord: o.coordUrl });
    void stopAll('no welcome').then(() => finish(1));
  }, WELCOME_TIMEOUT_MS);
  const onSignal = () => void stopAll('agent interrupted').then(() => finish(130));
  const onLifelineEnd = () => {
    log.warn('the launcher closed the session: stopping this host\'s ranks');
    void stopAll('launcher gone', true).then(() => finish(1));
  };
  o.lifeline?.once('end', onLifelineEnd);
  o.lifeline?.once('close', onLifelineEnd);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);

  const code = await finished;
  clearTimeout(welcomeTimer);
  clearInterval(hb);
  process.removeListener('SIGTERM', onSignal);
  process.removeListener('SIGINT', onSignal);
  o.lifeline?.removeListener('end', onLifelineEnd);
  o.lifeline?.removeListener('close', onLifelineEnd);
  await closeLink(ep, 500);
  return code;
}
