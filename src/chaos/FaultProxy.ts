/**
 * The fault proxy: a Transport that wraps another one (the seam of src/transport/Transport.ts)
 * and misbehaves on purpose, in both directions: it drops, delays, duplicates and reorders
 * frames, or partitions a peer (drops everything to and from it) during a window of time.
 * Used on the rank side (wrapping the rank's DEALER, enabled through ULYSSES_CHAOS) and on the
 * coordinator side (wrapping its ROUTER, per peer). Decisions come from a seeded generator, so a
 * plan misbehaves the same way on every run. Must never throw from send() or a handler, and never
 * hold a timer that outlives close().
 */
import type { Frame } from '../transport/FrameCodec.js';
import type { BodyOf, MessageType } from '../transport/messages.js';
import type { FrameHandler, PeerId, Transport, TransportStats } from '../transport/Transport.js';

export type NetFaultKind = 'drop' | 'delay' | 'duplicate' | 'reorder' | 'partition';

export interface NetRule {
  kind: NetFaultKind;
  /** probability that a frame is affected (partition: always 1) */
  p: number;
  delayMs: number;
  /** message types it applies to (null: every type) */
  types: string[] | null;
  /** peers it applies to on the coordinator side (null: every peer) */
  peers: PeerId[] | null;
  /** active from this time (ms on the proxy's clock) ... */
  fromMs: number;
  /** ... until this time (Infinity: for good) */
  toMs: number;
  /** frames this rule affected so far (the proxy counts them: a fault proves it fired) */
  hits?: number;
  /** called once, right after the first frame this rule affected (the count can be recorded before a kill) */
  onFirstHit?: () => void;
}

function hit(r: NetRule): void {
  r.hits = (r.hits ?? 0) + 1;
  if (r.hits === 1) r.onFirstHit?.();
}

export interface FaultProxyStats {
  dropped: number;
  delayed: number;
  duplicated: number;
  reordered: number;
}

type Deliver = () => void;

export class FaultProxy implements Transport {
  private handlers: FrameHandler[] = [];
  private rules: NetRule[] = [];
  private timers = new Set<NodeJS.Timeout>();
  /** one frame held back per direction and peer, released after the next one (a swap) */
  private held = new Map<string, { go: Deliver; timer: NodeJS.Timeout }>();
  private closed = false;
  private rng: number;
  readonly faults: FaultProxyStats = { dropped: 0, delayed: 0, duplicated: 0, reordered: 0 };
  private readonly t0: number;

  constructor(
    private readonly inner: Transport,
    o: { seed: number; now?: () => number; rules?: NetRule[] },
  ) {
    this.now = o.now ?? (() => performance.now());
    this.t0 = this.now();
    this.rng = (o.seed >>> 0) || 0x9e3779b9;
    for (const r of o.rules ?? []) this.addRule(r);
    inner.onFrame((f, from) => this.incoming(f, from));
  }

  private readonly now: () => number;

  /** Milliseconds since the proxy started (the time base of rules). */
  get elapsedMs(): number {
    return this.now() - this.t0;
  }

  get stats(): TransportStats {
    return this.inner.stats;
  }

  addRule(r: NetRule): void {
    this.rules.push(r);
  }

  /** A partition starting now (rank side: triggered at a step). */
  partitionNow(durationMs: number, peers: PeerId[] | null = null): void {
    const now = this.elapsedMs;
    this.addRule({ kind: 'partition', p: 1, delayMs: 0, types: null, peers, fromMs: now, toMs: now + durationMs });
  }

  /** xorshift32: deterministic per proxy */
  private random(): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    return this.rng / 2 ** 32;
  }

  private active(type: string, peer: PeerId): NetRule[] {
    const t = this.elapsedMs;
    return this.rules.filter((r) => t >= r.fromMs && t < r.toMs && (r.types === null || r.types.includes(type)) && (r.peers === null || r.peers.includes(peer)));
  }

  /** Runs `go` (a send or a delivery) through the active rules. */
  private route(dir: 'out' | 'in', type: string, peer: PeerId, go: Deliver): void {
    if (this.closed) return;
    let delay = 0;
    let copies = 1;
    let hold = false;
    for (const r of this.active(type, peer)) {
      if (r.kind === 'partition') {
        hit(r);
        this.faults.dropped++;
        return;
      }
      if (this.random() >= r.p) continue;
      hit(r);
      if (r.kind === 'drop') {
        this.faults.dropped++;
        return;
      }
      if (r.kind === 'delay') delay += r.delayMs;
      else if (r.kind === 'duplicate') copies = 2;
      else if (r.kind === 'reorder') hold = true;
    }
    const emit = () => {
      for (let i = 0; i < copies; i++) this.safely(go);
      if (copies > 1) this.faults.duplicated++;
    };
    const key = `${dir}:${peer}`;
    const run = () => {
      // looked up when it goes out (after any delay): a frame held meanwhile is the one it passes
      const prev = this.held.get(key);
      if (hold && !prev) {
        // hold this one until the next frame on the same path passes it (or 200 ms at most)
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          this.held.delete(key);
          emit();
        }, 200);
        this.timers.add(timer);
        this.held.set(key, { go: emit, timer });
        this.faults.reordered++;
        return;
      }
      emit();
      if (prev) {
        this.held.delete(key);
        clearTimeout(prev.timer);
        this.timers.delete(prev.timer);
        prev.go();
      }
    };
    if (delay > 0) {
      this.faults.delayed++;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (!this.closed) run();
      }, delay);
      this.timers.add(timer);
    } else run();
  }

  private safely(go: Deliver): void {
    try {
      go();
    } catch {
      /* a proxy never breaks its owner */
    }
  }

  send<K extends MessageType>(to: PeerId, type: K, body: BodyOf<K>): void {
    this.route('out', type, to, () => this.inner.send(to, type, body));
  }

  onFrame(handler: FrameHandler): void {
    this.handlers.push(handler);
  }

  private incoming(f: Frame, from: PeerId): void {
    this.route('in', f.type, from, () => {
      for (const h of this.handlers) this.safely(() => h(f, from));
    });
  }

  /**
   * Waits (at most timeoutMs) until every delayed or held frame has gone through: a delay is not
   * a drop, so a peer that is exiting cleanly still gets its last frames out.
   */
  async drain(timeoutMs = 1000): Promise<void> {
    const t0 = Date.now();
    for (const h of [...this.held.values()]) {
      clearTimeout(h.timer);
      this.timers.delete(h.timer);
      h.go();
    }
    this.held.clear();
    while (this.timers.size > 0 && Date.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 5));
  }

  /** Closes the proxy (not the inner transport, which its owner closes). Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.held.clear();
  }
}
