/**
 * The coordinator's handling of frames from node agents: joining (welcome with the job),
 * heartbeats, and the lifecycle reports of their ranks (started, exited). An exit settles the
 * rank's supervision; the exit of a rank that just reported a communication error waits out the
 * secondary-failure grace, so the first failure of a group is the one reported, and the exit code
 * of a rank that failed deterministically (failureClass.ts) fails the job at once, in case its
 * own report was lost.
 */
import type { Frame, FrameOf } from '../../transport/FrameCodec.js';
import type { PeerId } from '../../transport/Transport.js';
import { jobEvents } from '../events/jobEvents.js';
import { DETERMINISTIC_EXIT_CODE, NOT_RETRIED } from '../failureClass.js';
import { SECONDARY_FAILURE_GRACE_MS, type CoordinatorCore } from './CoordinatorCore.js';

export function handleAgentFrame(c: CoordinatorCore, f: Frame, from: PeerId): void {
  const hostIndex = f.sender;
  const a = c.agents.get(hostIndex);
  if (!a) return;
  if (a.joined) c.agentHeard(hostIndex);
  switch (f.type) {
    case 'peer.hello':
      a.joined = true;
      c.monitor.watch(from, c.job.cluster.heartbeatIntervalMs * 2);
      c.link.send(from, 'peer.welcome', c.welcome());
      c.events.emit(jobEvents.agentJoined({ host: c.hosts[hostIndex]!.host, hostIndex, pid: f.body.pid }));
      c.agentJoined();
      break;
    case 'peer.heartbeat':
      c.monitor.beat(from, 0, false);
      break;
    case 'agent.rank.started': {
      const r = c.ranks.get(f.body.rank);
      if (r && r.incarnation === f.body.incarnation) r.pid = f.body.pid;
      break;
    }
    case 'agent.rank.exited':
      rankExited(c, f);
      break;
    default:
      break;
  }
}

function rankExited(c: CoordinatorCore, f: FrameOf<'agent.rank.exited'>): void {
  const { rank, incarnation: inc, stderrTail } = f.body;
  c.exits.confirm(rank, inc);
  const r = c.ranks.get(rank);
  if (!r || r.incarnation !== inc) return;
  r.exitReported = true;
  const code = f.body.code ?? null;
  const signal = f.body.signal ?? null;
  const normal = code === 0;
  const reason = normal ? 'finished' : signal ? `killed by ${signal}` : `exited with code ${code}`;
  c.events.emit(
    normal
      ? jobEvents.rankExited({ rank, incarnation: inc, code, signal, reason, detectedBy: 'agent' })
      : jobEvents.rankFailed({ rank, incarnation: inc, code, signal, reason, stderrTail: stderrTail.slice(-2000), detectedBy: 'agent' }),
  );
  c.monitor.forget(r.peer);
  r.pid = null;
  if (code === DETERMINISTIC_EXIT_CODE) {
    // its own report (which the job's failure quotes) normally came first; this is the fallback
    const last = stderrTail.trim().split('\n').pop() ?? '';
    c.fail(`rank ${rank} failed in a way a restart cannot fix (exit code ${code})${last ? `: ${last.slice(0, 500)}` : ''} (${NOT_RETRIED})`, 'deterministic');
    return;
  }
  const settle = () => {
    // settled late (the secondary grace) after its group was restarted: the supervisor ignores
    // it, and so must the job chart (a stale failure would hold it in `recovering`)
    if (!normal && !r.isSettled && c.ranks.get(rank) === r) c.chart.send({ type: 'job.rank.failed', rank, reason });
    r.fail({ normal, reason, code, signal, detail: { stderrTail } });
  };
  // the exit of a rank that just reported a communication error waits out the same grace
  const wait = r.secondaryAt === null ? 0 : SECONDARY_FAILURE_GRACE_MS - (c.clock.now() - r.secondaryAt);
  if (!normal && wait > 0) c.clock.setTimeout(settle, wait);
  else settle();
}
