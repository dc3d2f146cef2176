/**
 * The peer side of the link to the coordinator, shared by node agents and ranks: waiting for the
 * welcome (which carries the job), the rule for a coordinator that went silent (stop rather than
 * become an orphan), and closing the endpoint so the last frames still leave. Never exits the
 * process.
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

/** The coordinator is gone once it missed its heartbeats, with two intervals of slack. */
export function coordinatorLost(silentMs: number, c: ClusterSettings): boolean {
  return silentMs > c.heartbeatIntervalMs * (c.missLimit + 2);
}

/** Lets queued frames out (bounded by flushMs), then closes the endpoint. */
export async function closeLink(ep: DealerEndpoint, flushMs: number): Promise<void> {
  await ep.flush(flushMs);
  // let ZeroMQ's I/O thread put the last frames on the wire
  await new Promise((r) => setTimeout(r, 50));
  await ep.close();
}
