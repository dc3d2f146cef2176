/**
 * The peer side of the link to the coordinator, shared by node agents and ranks: waiting for the
 * welcome (which carries the job), the rules for a coordinator that went silent (it may only be
 * paused: keep going through `cluster.coordinator_grace_s`, then stop rather than become an
 * orphan), telling when it came back, and closing the endpoint so the last frames still leave.
 * Never exits the process.
 */
import type { ClusterSettings } from '../config/ClusterSettings.js';
import type { BodyOf } from '../transport/messages.js';
import type { Transport } from '../transport/Transport.js';
import type { DealerEndpoint } from '../transport/ZmqEndpoints.js';

/** How long a peer waits for the coordinator's welcome after its hello. */
export const WELCOME_TIMEOUT_MS = 30_000;

/** Resolves with the first welcome on `link`, or null when none came within `timeoutMs`. */
export function welcomeFrom(link: Transport, timeoutMs = WELCOME_TIMEOUT_MS): Promise<BodyOf<'peer.welcome'> | null> {
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => finish(null), timeoutMs);
    const finish = (w: BodyOf<'peer.welcome'> | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(w);
    };
    link.onFrame((f) => {
      if (f.type === 'peer.welcome') finish(f.body);
    });
  });
}

/** Silent this long, the coordinator has missed its heartbeats (with two intervals of slack): it is paused, cut off or gone. */
export function coordinatorSilent(silentMs: number, c: ClusterSettings): boolean {
  return silentMs > c.heartbeatIntervalMs * (c.missLimit + 2);
}

/** How long a peer keeps going without the coordinator: the grace, never less than the heartbeat detection. */
export function coordinatorGraceMs(c: ClusterSettings): number {
  return Math.max(c.coordinatorGraceMs, c.heartbeatIntervalMs * (c.missLimit + 2));
}

/** The coordinator is gone for good once it has been silent for longer than the grace. */
export function coordinatorLost(silentMs: number, c: ClusterSettings): boolean {
  return silentMs > coordinatorGraceMs(c);
}

/**
 * Watches the coordinator's silence for a peer: `heard()` on every frame from it, `check()` on
 * every heartbeat tick. Says once when the coordinator fell silent, once when it came back
 * (after how long), and when it is lost for good.
 */
export class CoordinatorWatch {
  private last = Date.now();
  private silentSince: number | null = null;

  constructor(
    private readonly c: ClusterSettings,
    private readonly on: { silent?(): void; back?(silentMs: number): void },
  ) {}

  heard(): void {
    const now = Date.now();
    if (this.silentSince !== null) {
      const ms = now - this.silentSince;
      this.silentSince = null;
      this.on.back?.(ms);
    }
    this.last = now;
  }

  /** 'lost' once the grace is over; 'silent' while the coordinator is quiet within it. */
  check(): 'ok' | 'silent' | 'lost' {
    const silentMs = Date.now() - this.last;
    if (coordinatorLost(silentMs, this.c)) return 'lost';
    if (!coordinatorSilent(silentMs, this.c)) return 'ok';
    if (this.silentSince === null) {
      this.silentSince = this.last;
      this.on.silent?.();
    }
    return 'silent';
  }
}

/** Lets queued frames out (bounded by flushMs), then closes the endpoint. */
export async function closeLink(ep: DealerEndpoint, flushMs: number): Promise<void> {
  await ep.flush(flushMs);
  // let ZeroMQ's I/O thread put the last frames on the wire
  await new Promise((r) => setTimeout(r, 50));
  await ep.close();
}
