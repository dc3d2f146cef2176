/**
 * The coordinator's handling of frames from ranks: joining (welcome with the job and the
 * attempt), heartbeats, the rendezvous store, readiness, step reports, policy transitions,
 * checkpoints, completion and failure reports. Frames from an older incarnation of a rank are
 * stale and ignored. Final reports (done, failed) are acknowledged, also when stale or resent
 * (their sender waits for the receipt), and handled once. A failure a restart cannot cure
 * (failureClass.ts) fails the job at once; a reported communication error is usually the echo of
 * a peer's failure: it settles only after the secondary-failure grace, so the root cause is
 * reported first.
 */
import type { Frame, FrameOf } from '../../transport/FrameCodec.js';
import type { PeerId } from '../../transport/Transport.js';
import { jobEvents } from '../events/jobEvents.js';
import { failureClassOf, NOT_RETRIED } from '../failureClass.js';
import { SECONDARY_FAILURE_GRACE_MS, type CoordinatorCore } from './CoordinatorCore.js';
import type { RemoteRank } from './RemoteRank.js';

export function handleRankFrame(c: CoordinatorCore, f: Frame, from: PeerId): void {
  const rank = f.sender;
  // the sender of a final report waits for this receipt, whatever becomes of the report
  if (f.type === 'rank.done' || f.type === 'rank.failed') c.link.send(from, 'peer.ack', { of: f.type });
  const r = c.ranks.get(rank);
  if (!r || f.incarnation !== r.incarnation) return;
  if (f.type === 'rank.done' || f.type === 'rank.failed') {
    if (r.finalReported) return;
    r.finalReported = true;
  }
  switch (f.type) {
    case 'peer.hello':
      c.link.send(from, 'peer.welcome', c.welcome(r.incarnation));
      c.events.emit(jobEvents.rankJoined({ rank, incarnation: r.incarnation, pid: f.body.pid }));
      break;
    case 'peer.heartbeat':
      c.monitor.beat(from, f.body.step, f.body.busy);
      break;
    case 'kv.set':
      c.kv.set(f.body.key, f.body.value);
      break;
    case 'kv.get':
    case 'kv.wait': {
      const id = f.body.id;
      const [keys, timeout] = f.type === 'kv.get' ? [[f.body.key], c.job.cluster.rendezvousTimeoutMs] : [f.body.keys, f.body.timeoutMs];
      c.kv.wait(keys, timeout).then(
        (values) => c.link.send(from, 'kv.reply', { id, values, value: values[0] }),
        (e: Error) => c.link.send(from, 'kv.reply', { id, error: e.message }),
      );
      break;
    }
    case 'rank.ready':
      c.ready.add(rank);
      if (c.ready.size === c.world) c.chart.send({ type: 'job.ranks.ready' });
      break;
    case 'rank.step.done':
      c.stepReport(rank, f.body);
      break;
    case 'rank.policy.transition':
      c.events.emit(jobEvents.policyTransition({ rank, ...f.body }));
      break;
    case 'rank.eval.done':
      if (rank === 0) c.evalReport(f.body);
      break;
    case 'rank.checkpoint.written':
      c.events.emit(jobEvents.checkpointCommitted({ rank, ...f.body }));
      break;
    case 'rank.done':
      // a finished rank stops heartbeating while it exits: that is not a failure
      c.monitor.forget(from);
      c.finalHashes[rank] = f.body.finalHash;
      c.rankDone(rank, f.body);
      c.events.emit(jobEvents.rankDone({ rank, step: f.body.step, finalHash: f.body.finalHash, ...(f.body.trained !== undefined ? { trained: f.body.trained } : {}) }));
      break;
    case 'rank.failed':
      rankFailed(c, r, f);
      break;
    default:
      break;
  }
}

function rankFailed(c: CoordinatorCore, r: RemoteRank, f: FrameOf<'rank.failed'>): void {
  const rank = r.slot.rank;
  const { code } = f.body;
  c.events.emit(jobEvents.rankFailed({ rank, incarnation: r.incarnation, reason: f.body.reason.slice(0, 4000), code, detectedBy: 'rank' }));
  const reason = f.body.reason.split('\n')[0]!;
  if (failureClassOf(code) === 'deterministic') {
    // it would fail the same way after a restart: the job ends now, with this one message
    c.fail(`rank ${rank}: ${reason} (${code}; ${NOT_RETRIED})`, 'deterministic');
    return;
  }
  const settle = () => {
    if (!r.isSettled && c.ranks.get(rank) === r) c.chart.send({ type: 'job.rank.failed', rank, reason });
    r.fail({ normal: false, reason, detail: { code } });
  };
  // A communication error is usually the echo of a peer's failure: give the root cause (the
  // peer's exit or its own report) a moment to arrive first, so reports name the first failure.
  if ((code ?? '').startsWith('ERR_COMM')) {
    r.secondaryAt = c.clock.now();
    c.clock.setTimeout(settle, SECONDARY_FAILURE_GRACE_MS);
  } else settle();
}
