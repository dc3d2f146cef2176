/**
 * The rank side of the rendezvous store: request/reply over the control-plane transport.
 * Every request has an id; replies are matched by id; each request has a timeout.
 */
import type { Transport } from '../../transport/Transport.js';
import type { Frame } from '../../transport/FrameCodec.js';
import type { RendezvousStore } from './Workload.js';

export class KvClient implements RendezvousStore {
  private nextId = 1;
  private pending = new Map<number, { resolve(f: Frame['body']): void; reject(e: Error): void; timer: NodeJS.Timeout }>();

  constructor(
    private readonly t: Transport,
    private readonly prefix: string,
    private readonly defaultTimeoutMs = 60_000,
  ) {
    t.onFrame((f) => {
      if (f.type !== 'kv.reply') return;
      const p = this.pending.get(f.body.id as number);
      if (!p) return;
      this.pending.delete(f.body.id as number);
      clearTimeout(p.timer);
      if (f.body.error) p.reject(Object.assign(new Error(String(f.body.error)), { code: 'ERR_RENDEZVOUS' }));
      else p.resolve(f.body);
    });
  }

  private request(type: 'kv.get' | 'kv.wait', body: Record<string, unknown>, timeoutMs: number): Promise<Frame['body']> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(Object.assign(new Error(`rendezvous request timed out after ${timeoutMs} ms`), { code: 'ERR_RENDEZVOUS_TIMEOUT' }));
      }, timeoutMs + 1000);
      this.pending.set(id, { resolve, reject, timer });
      this.t.send('coord', type, { ...body, id });
    });
  }

  async set(key: string, value: Uint8Array): Promise<void> {
    this.t.send('coord', 'kv.set', { key: this.prefix + key, value });
  }

  async get(key: string): Promise<Uint8Array> {
    const [v] = await this.wait([key], this.defaultTimeoutMs);
    return v!;
  }

  async wait(keys: string[], timeoutMs: number): Promise<Uint8Array[]> {
    const r = await this.request('kv.wait', { keys: keys.map((k) => this.prefix + k), timeoutMs }, timeoutMs);
    return r.values as Uint8Array[];
  }

  close(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(Object.assign(new Error('rendezvous client closed'), { code: 'ERR_RENDEZVOUS_CANCELLED' }));
    }
    this.pending.clear();
  }
}
