/**
 * The shutdown ladder for a remote rank: an abort over the control plane, then its node agent's
 * SIGTERM and SIGKILL (at once when the rank has already failed: crashed, frozen or hung), then
 * a bounded wait for the agent's confirmation of the exit. Never waits forever: an exit that is
 * not confirmed in time is logged as an event.
 */
import { jobEvents } from '../events/jobEvents.js';
import type { CoordinatorCore } from './CoordinatorCore.js';
import type { RemoteRank } from './RemoteRank.js';

export async function stopRank(c: CoordinatorCore, r: RemoteRank, reason: string): Promise<void> {
  const grace = c.job.cluster.shutdownGraceMs;
  c.monitor.forget(r.peer);
  // Its exit report came before this stop (a rank that failed on its own, whose failure still
  // waits out the secondary-failure grace): waiting for another would stall the restart.
  if (r.exitReported) return;
  const exited = c.exits.wait(r.slot.rank, r.incarnation);
  if (r.pid === null && r.isSettled) return;
  if (r.isSettled) {
    // already failed (crashed, frozen, hung): no point in asking nicely
    c.link.send(r.agentPeer, 'agent.signal', { rank: r.slot.rank, signal: 'SIGKILL' });
  }
  c.link.send(r.peer, 'job.command', { command: 'abort', detail: { reason } });
  // its agent is gone: the abort above (and the rank's own orphan check) is all that is left
  if (c.deadAgents.has(r.slot.hostIndex)) return;
  c.link.send(r.agentPeer, 'agent.stop', { rank: r.slot.rank, incarnation: r.incarnation, reason, graceMs: grace });
  // the agent's ladder (abort wait, SIGTERM grace, SIGKILL wait) plus time for its report
  const bound = 2000 + grace + 3000 + 2000;
  let t: NodeJS.Timeout | undefined;
  const ok = await Promise.race([exited.then(() => true), new Promise<boolean>((res) => (t = setTimeout(() => res(false), bound)))]);
  clearTimeout(t);
  if (!ok) c.events.emit(jobEvents.rankUnconfirmedStop({ rank: r.slot.rank, incarnation: r.incarnation, waitedMs: bound }));
}
