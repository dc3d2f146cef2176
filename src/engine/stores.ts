/**
 * Rendezvous stores for the communicator: where ranks publish their Gloo addresses and read their
 * peers'. A file store (a directory every rank can see) for tests and single-host jobs, and the
 * `RendezvousStore` interface any JS store implements (the coordinator's ZeroMQ store later);
 * `MemoryStore` is the in-process one, also what a coordinator serves to its ranks.
 * Must never resolve `get`/`wait` before the keys exist, and never wait without a deadline.
 */

/** A key-value store with waiting reads. `get` resolves once the key exists. */
export interface RendezvousStore {
  set(key: string, value: Uint8Array): Promise<void>;
  get(key: string, timeoutMs: number): Promise<Uint8Array>;
  wait(keys: string[], timeoutMs: number): Promise<void>;
}

/** A store over files in `dir` (Gloo's FileStore, implemented natively). */
export interface FileStoreSpec {
  kind: 'file';
  dir: string;
}

export function fileStore(dir: string): FileStoreSpec {
  return { kind: 'file', dir };
}

export function isFileStore(s: unknown): s is FileStoreSpec {
  return typeof s === 'object' && s !== null && (s as { kind?: unknown }).kind === 'file';
}

function timeoutError(what: string, ms: number): Error & { code: string } {
  return Object.assign(new Error(`${what}: not set within ${ms} ms`), { code: 'ERR_COMM_TIMEOUT' });
}

/** An in-memory store: a Map plus waiters woken by `set`. */
export class MemoryStore implements RendezvousStore {
  private readonly values = new Map<string, Uint8Array>();
  private waiters: { keys: string[]; wake: () => void }[] = [];

  async set(key: string, value: Uint8Array): Promise<void> {
    this.values.set(key, Uint8Array.from(value));
    const ready = this.waiters.filter((w) => w.keys.every((k) => this.values.has(k)));
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.wake();
  }

  async get(key: string, timeoutMs: number): Promise<Uint8Array> {
    await this.wait([key], timeoutMs);
    return this.values.get(key)!;
  }

  wait(keys: string[], timeoutMs: number): Promise<void> {
    if (keys.every((k) => this.values.has(k))) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        keys,
        wake: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(timeoutError(`store wait for ${keys.join(', ')}`, timeoutMs));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Number of keys held (for tests and diagnostics). */
  get size(): number {
    return this.values.size;
  }
}
