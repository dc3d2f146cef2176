/**
 * Injected time for the control plane, so timeouts and heartbeats are testable without sleeping.
 * `systemClock` is the real one; `SimulatedClock` advances only when told to.
 * Nothing in the control plane may call Date.now()/setTimeout directly: take a Clock.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since an arbitrary epoch (monotonic for the system clock). */
  now(): number;
  /** Calls fn once after ms milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Calls fn every ms milliseconds until cancelled. */
  setInterval(fn: () => void, ms: number): TimerHandle;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const h = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(h) };
  },
  setInterval(fn, ms) {
    const h = setInterval(fn, ms);
    return { cancel: () => clearInterval(h) };
  },
};

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  every?: number;
  cancelled: boolean;
}

/** A clock whose time moves only through advance(); timers fire in time order, ties in creation order. */
export class SimulatedClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: Pending[] = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, Math.max(1, ms));
  }

  /** Moves time forward by ms, firing every timer that falls due (including ones they schedule). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const live = this.timers.filter((p) => !p.cancelled && p.at <= end);
      if (live.length === 0) break;
      live.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = live[0]!;
      this.t = Math.max(this.t, next.at);
      if (next.every !== undefined) next.at += next.every;
      else next.cancelled = true;
      next.fn();
    }
    this.timers = this.timers.filter((p) => !p.cancelled);
    this.t = end;
  }

  private add(fn: () => void, ms: number, every?: number): TimerHandle {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, every, cancelled: false };
    this.timers.push(p);
    return { cancel: () => void (p.cancelled = true) };
  }
}
