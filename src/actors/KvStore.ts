/**
 * The rendezvous key-value store the coordinator serves to ranks (Gloo bootstraps its TCP mesh
 * through it), so ranks need no shared filesystem. Values are bytes. `wait` resolves when every
 * key exists, or rejects on timeout. Keys are namespaced by the caller (per restart attempt), so
 * a restarted group never reads a previous attempt's addresses.
 */
import type { Clock, TimerHandle } from '../util/Clock.js';

interface Waiter {
  keys: string[];
  resolve(values: Uint8Array[]): void;
  reject(e: Error): void;
  timer: TimerHandle;
}

export class KvStore {
  private data = new Map<string, Uint8Array>();
  private waiters = new Set<Waiter>();

  constructor(private readonly clock: Clock) {}

  set(key: string, value: Uint8Array): void {
    this.data.set(key, value);
    for (const w of [...this.waiters]) {
      if (w.keys.every((k) => this.data.has(k))) {
        this.waiters.delete(w);
        w.timer.cancel();
        w.resolve(w.keys.map((k) => this.data.get(k)!));
      }
    }
  }

  get(key: string): Uint8Array | undefined {
    return this.data.get(key);
  }

  wait(keys: string[], timeoutMs: number): Promise<Uint8Array[]> {
    if (keys.every((k) => this.data.has(k))) return Promise.resolve(keys.map((k) => this.data.get(k)!));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        keys,
        resolve,
        reject,
        timer: this.clock.setTimeout(() => {
          this.waiters.delete(w);
          const missing = keys.filter((k) => !this.data.has(k));
          reject(Object.assign(new Error(`rendezvous timed out after ${timeoutMs} ms waiting for ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', ...' : ''}`), { code: 'ERR_RENDEZVOUS_TIMEOUT' }));
        }, timeoutMs),
      };
      this.waiters.add(w);
    });
  }

  /** Drops keys with a prefix (an old attempt's namespace) and fails its waiters. */
  clear(prefix = ''): void {
    for (const k of [...this.data.keys()]) if (k.startsWith(prefix)) this.data.delete(k);
    for (const w of [...this.waiters]) {
      if (w.keys.some((k) => k.startsWith(prefix))) {
        this.waiters.delete(w);
        w.timer.cancel();
        w.reject(Object.assign(new Error('rendezvous cancelled (the group is restarting)'), { code: 'ERR_RENDEZVOUS_CANCELLED' }));
      }
    }
  }

  get size(): number {
    return this.data.size;
  }
}
