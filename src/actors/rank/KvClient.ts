/**
 * The rank side of the rendezvous store (the engine's RendezvousStore, served by the
 * coordinator's KvStore): request/reply over the control-plane transport. Every request has an
 * id; replies are matched by id; each request has a timeout.
 */
import type { RendezvousStore } from '../../engine/stores.js';
import type { BodyOf } from '../../transport/messages.js';
import type { Transport } from '../../transport/Transport.js';

type Reply = BodyOf<'kv.reply'>;

export class KvClient implements RendezvousStore {
  private nextId = 1;
  private pending = new Map<number, { resolve(r: Reply): void; reject(e: Error): void; timer: NodeJS.Timeout }>();

  constructor(
    private readonly t: Transport,
    private readonly prefix: string,
  ) {
    t.onFrame((f) => {
      if (f.type !== 'kv.reply') return;
      const p = this.pending.get(f.body.id);
      if (!p) return;
      this.pending.delete(f.body.id);
      clearTimeout(p.timer);
      if (f.body.error) p.reject(Object.assign(new Error(f.body.error), { code: 'ERR_RENDEZVOUS' }));
      else p.resolve(f.body);
    });
  }

  private waitFor(keys: string[], timeoutMs: number): Promise<Uint8Array[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(Object.assign(new Error(`rendezvous request timed out after ${timeoutMs} ms`), { code: 'ERR_RENDEZVOUS_TIMEOUT' }));
      }, timeoutMs + 1000);
      this.pending.set(id, { resolve: (r) => resolve(r.values ?? []), reject, timer });
      this.t.send('coord', 'kv.wait', { keys: keys.map((k) => this.prefix + k), timeoutMs, id });
    });
  }

  async set(key: string, value: Uint8Array): Promise<void> {
    this.t.send('coord', 'kv.set', { key: this.prefix + key, value });
  }

  async get(key: string, timeoutMs: number): Promise<Uint8Array> {
    const [v] = await this.waitFor([key], timeoutMs);
    return v!;
  }

  async wait(keys: string[], timeoutMs: number): Promise<void> {
    await this.waitFor(keys, timeoutMs);
  }

  close(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(Object.assign(new Error('rendezvous client closed'), { code: 'ERR_RENDEZVOUS_CANCELLED' }));
    }
    this.pending.clear();
  }
}
