/**
 * Rate-limited logging of dropped control frames (malformed, oversized, spoofed, refused): the
 * first drop from a peer in an interval is logged with its reason, the rest are counted and
 * logged as one summary line per peer per interval. A key holder sending garbage at full speed
 * gives a line every interval instead of one per frame. Must never throw, and never keep the
 * process alive (its timer is unref'd and stopped by close()).
 */
import type { Logger } from '../util/Logger.js';

interface PeerDrops {
  /** when the current interval started */
  since: number;
  /** drops counted (not logged) in the current interval */
  count: number;
  lastReason: string;
}

export interface DropLogOptions {
  logger: Logger;
  /** the message of the first drop of an interval ("dropped a control frame") */
  what: string;
  intervalMs?: number;
  /** at most this many peers are told apart; the rest are counted under '*' */
  maxPeers?: number;
  now?: () => number;
}

export class DropLog {
  private readonly peers = new Map<string, PeerDrops>();
  private timer: NodeJS.Timeout | null = null;
  private readonly intervalMs: number;
  private readonly maxPeers: number;
  private readonly now: () => number;
  /** every drop ever counted, logged or not */
  total = 0;

  constructor(private readonly o: DropLogOptions) {
    this.intervalMs = o.intervalMs ?? 10_000;
    this.maxPeers = o.maxPeers ?? 256;
    this.now = o.now ?? Date.now;
  }

  drop(peer: string, reason: string): void {
    this.total++;
    const key = this.peers.has(peer) || this.peers.size < this.maxPeers ? peer : '*';
    const t = this.now();
    const p = this.peers.get(key);
    if (p && t - p.since < this.intervalMs) {
      p.count++;
      p.lastReason = reason;
      this.timer ??= setTimeout(() => this.tick(), this.intervalMs).unref();
      return;
    }
    if (p) this.summarize(key, p, t);
    this.o.logger.warn(this.o.what, { from: key, reason });
    this.peers.set(key, { since: t, count: 0, lastReason: reason });
  }

  private summarize(peer: string, p: PeerDrops, t: number): void {
    if (p.count === 0) return;
    this.o.logger.warn(`${this.o.what}: ${p.count} more from ${peer} in ${((t - p.since) / 1000).toFixed(1)} s`, { from: peer, lastReason: p.lastReason });
    p.count = 0;
  }

  /** Logs the summaries of intervals that are over; keeps the timer while counts are pending. */
  private tick(): void {
    this.timer = null;
    const t = this.now();
    let pending = false;
    for (const [peer, p] of this.peers) {
      if (t - p.since >= this.intervalMs) {
        this.summarize(peer, p, t);
        this.peers.delete(peer);
      } else if (p.count > 0) pending = true;
    }
    if (pending) this.timer = setTimeout(() => this.tick(), this.intervalMs).unref();
  }

  /** Logs every pending summary and stops the timer; safe to call twice. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const t = this.now();
    for (const [peer, p] of this.peers) this.summarize(peer, p, t);
    this.peers.clear();
  }
}
