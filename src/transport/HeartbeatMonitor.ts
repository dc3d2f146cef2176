/**
 * Liveness from application heartbeats. Each peer reports (step, phase) every interval; a peer is
 * dead after `missLimit` intervals without one, and hung when heartbeats keep arriving but its
 * step has not advanced for `stepTimeoutMs` while it says it is busy training. Time comes from
 * the injected Clock, so tests drive it without sleeping. Each verdict is reported once.
 */
import type { Clock, TimerHandle } from '../util/Clock.js';
import type { PeerId } from './Transport.js';

export interface HeartbeatOptions {
  clock: Clock;
  intervalMs: number;
  missLimit: number;
  /** 0 disables hang detection */
  stepTimeoutMs: number;
  onDead(peer: PeerId, silentMs: number): void;
  onHung(peer: PeerId, step: number, stalledMs: number): void;
}

interface PeerState {
  lastBeat: number;
  step: number;
  stepSince: number;
  busy: boolean;
  reported: boolean;
}

export class HeartbeatMonitor {
  private peers = new Map<PeerId, PeerState>();
  private timer: TimerHandle | null = null;
  private lastTick: number | null = null;
  /** ticks skipped because this process itself was stalled (see tick()) */
  stalls = 0;

  constructor(private readonly o: HeartbeatOptions) {}

  /**
   * Starts watching a peer (as if it had just sent a heartbeat at step -1). `startupGraceMs`
   * extends the first deadline for a process that is still starting up.
   */
  watch(peer: PeerId, startupGraceMs = 0): void {
    const now = this.o.clock.now();
    this.peers.set(peer, { lastBeat: now + startupGraceMs, step: -1, stepSince: now, busy: false, reported: false });
    // check often enough that detection latency stays well under one interval
    this.timer ??= this.o.clock.setInterval(() => this.tick(), this.period);
  }

  forget(peer: PeerId): void {
    this.peers.delete(peer);
    if (this.peers.size === 0) this.stop();
  }

  beat(peer: PeerId, step: number, busy = true): void {
    const p = this.peers.get(peer);
    if (!p) return;
    const now = this.o.clock.now();
    p.lastBeat = now;
    p.busy = busy;
    if (step !== p.step) {
      p.step = step;
      p.stepSince = now;
    }
  }

  private get period(): number {
    return Math.max(10, Math.floor(this.o.intervalMs / 4));
  }

  /**
   * The timer's check. When the timer itself fired far too late, this process was stalled (GC,
   * a blocked loop, CPU starvation): heartbeats that arrived meanwhile still wait behind this
   * timer in the event loop, so peers are judged on the next tick, once those are read. Without
   * this a stalled coordinator blames healthy peers. Costs one tick of detection latency.
   */
  private tick(): void {
    const now = this.o.clock.now();
    const stalled = this.lastTick !== null && now - this.lastTick > Math.max(this.o.intervalMs, 3 * this.period);
    this.lastTick = now;
    if (stalled) {
      this.stalls++;
      return;
    }
    this.check();
  }

  /** Runs the checks now (also called by the internal timer). */
  check(): void {
    const now = this.o.clock.now();
    const deadAfter = this.o.intervalMs * this.o.missLimit;
    for (const [peer, p] of this.peers) {
      if (p.reported) continue;
      if (now - p.lastBeat > deadAfter) {
        p.reported = true;
        this.o.onDead(peer, Math.max(0, now - p.lastBeat));
      } else if (this.o.stepTimeoutMs > 0 && p.busy && now - p.stepSince > this.o.stepTimeoutMs) {
        p.reported = true;
        this.o.onHung(peer, p.step, now - p.stepSince);
      }
    }
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
    this.lastTick = null;
  }
}
