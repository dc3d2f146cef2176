/**
 * A group of rank processes connected by Gloo over TCP, with the collectives the engine needs:
 * all-reduce (sum), broadcast, barrier, all-gather of small metadata, all-to-all, and the Ulysses
 * seq<->head layouts of REFERENCE §2 (packed natively). Every collective runs off the main thread,
 * in call order, and ends within the communicator's timeout: a dead peer gives a coded rejection
 * (ERR_COMM_TIMEOUT or ERR_COMM_PEER), after which the communicator refuses work (ERR_COMM_CLOSED).
 * Must never let two collectives of one communicator run out of call order (ranks would deadlock)
 * and never hold the event loop open after `close()`.
 */
import { native } from './native.js';
import type { CommHandle, StoreRequest, TypedArray } from './nativeBinding.js';
import { EngineError } from './errors.js';
import { kvHeadsPerRank } from './headSplit.js';
import { isFileStore, type FileStoreSpec, type RendezvousStore } from './stores.js';

export type CommErrorCode = 'ERR_COMM_TIMEOUT' | 'ERR_COMM_PEER' | 'ERR_COMM_CLOSED' | 'ERR_COMM_ARG' | 'ERR_COMM_STORE';

export class CommError extends Error {
  readonly code: CommErrorCode;
  constructor(code: CommErrorCode, message: string) {
    super(message);
    this.name = 'CommError';
    this.code = code;
  }
}

/** The Ulysses layouts, in the native binding's numbering. */
const ULYSSES_OPS = ['seqToHead', 'headToSeq', 'seqToHeadKv', 'headToSeqKvSum'] as const;
export type UlyssesOp = (typeof ULYSSES_OPS)[number];

export type CommArray = TypedArray;

export interface ConnectOptions {
  rank: number;
  size: number;
  store: FileStoreSpec | RendezvousStore;
  /** Deadline of the connection and of every collective, in ms (default 30 000). */
  timeoutMs?: number;
  /** Address this rank listens on (default 127.0.0.1). */
  host?: string;
  /**
   * When every rank runs on this host, exchange all-to-all data through shared memory (default
   * true); barriers, and so failure detection, stay on TCP. False: everything over TCP.
   */
  sharedMemory?: boolean;
}

/** Adapts a JS store to the native bridge's request(op, key|keys, value) calls. */
function storeRequest(store: RendezvousStore, timeoutMs: number): StoreRequest {
  return async (op, key, value) => {
    if (op === 'set') await store.set(key as string, value!);
    else if (op === 'get') return store.get(key as string, timeoutMs);
    else await store.wait(key as string[], timeoutMs);
    return undefined;
  };
}

function checkInt(what: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new EngineError('ERR_ARG', `${what}: expected an integer >= ${min}, got ${v}`);
}

export class Communicator {
  private handle: CommHandle | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;

  private constructor(handle: CommHandle, readonly rank: number, readonly size: number, readonly timeoutMs: number) {
    this.handle = handle;
  }

  static async connect(o: ConnectOptions): Promise<Communicator> {
    checkInt('size', o.size, 1);
    checkInt('rank', o.rank, 0);
    if (o.rank >= o.size) throw new EngineError('ERR_ARG', `rank ${o.rank} is not in [0, ${o.size})`);
    const timeoutMs = o.timeoutMs ?? 30_000;
    checkInt('timeoutMs', timeoutMs, 1);
    const store = isFileStore(o.store) ? o.store.dir : storeRequest(o.store, timeoutMs);
    const handle = await native().commConnect(o.rank, o.size, store, timeoutMs, o.host ?? '127.0.0.1', o.sharedMemory ?? true);
    return new Communicator(handle, o.rank, o.size, timeoutMs);
  }

  /**
   * The native handle, for native consumers of this communicator (the model's Ulysses attention).
   * Throws ERR_COMM_CLOSED once closed.
   */
  get nativeHandle(): CommHandle {
    if (this.handle === undefined) throw new CommError('ERR_COMM_CLOSED', 'nativeHandle: the communicator is closed');
    return this.handle;
  }

  /** Whether all-to-alls go through shared memory (every rank on this host) rather than TCP. */
  get sharedMemory(): boolean {
    return this.handle !== undefined && native().commInfo(this.handle).sharedMemory;
  }

  /** Queues `fn` after every earlier collective of this communicator (same order on every rank). */
  private enqueue<T>(what: string, fn: (handle: CommHandle) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.handle === undefined) throw new CommError('ERR_COMM_CLOSED', `${what}: the communicator is closed`);
      return fn(this.handle);
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  /** x <- sum over ranks of x, in place; every rank gets the same bits. */
  allReduceSum(x: Float32Array): Promise<void> {
    return this.enqueue('allReduceSum', (h) => native().commAllReduceSum(h, x));
  }

  /** x on `root` is copied into x on every rank. */
  broadcast(x: CommArray, root = 0): Promise<void> {
    return this.enqueue('broadcast', (h) => native().commBroadcast(h, x, root));
  }

  barrier(): Promise<void> {
    return this.enqueue('barrier', (h) => native().commBarrier(h));
  }

  /** Concatenation of every rank's x (same length everywhere), in rank order; `out` (size x x.length) avoids allocating it. */
  allGather<T extends CommArray>(x: T, out?: T): Promise<T> {
    const Ctor = x.constructor as new (n: number) => T;
    const o = out ?? new Ctor(x.length * this.size);
    return this.enqueue('allGather', async (h) => {
      await native().commAllGather(h, x, o);
      return o;
    });
  }

  /**
   * The sum over ranks of chunk `rank` of x (x.length / size elements), added in rank order within
   * blocks of `block` consecutive ranks, then over the blocks (block 2 on 4 ranks: (x0 + x1) +
   * (x2 + x3), as a sum over SP pairs then over replicas): the same bits run to run, over shared
   * memory or TCP. `out` avoids allocating the result.
   */
  reduceScatterSum(x: Float32Array, block = 1, out?: Float32Array): Promise<Float32Array> {
    if (x.length % this.size !== 0) throw new CommError('ERR_COMM_ARG', `reduceScatterSum: input length ${x.length} is not a multiple of the size ${this.size}`);
    if (!Number.isInteger(block) || block < 1 || this.size % block !== 0) throw new CommError('ERR_COMM_ARG', `reduceScatterSum: block ${block} does not divide the size ${this.size}`);
    const o = out ?? new Float32Array(x.length / this.size);
    return this.enqueue('reduceScatterSum', async (h) => {
      await native().commReduceScatterSum(h, x, o, block);
      return o;
    });
  }

  /**
   * Chunk j of x (x.length / size elements) goes to rank j; chunk i of the result came from rank i.
   * `out` (same type and length as x) avoids allocating the result (fresh pages are slow to fault in).
   */
  allToAll<T extends CommArray>(x: T, out?: T): Promise<T> {
    const Ctor = x.constructor as new (n: number) => T;
    out ??= new Ctor(x.length);
    return this.enqueue('allToAll', async (h) => {
      await native().commAllToAll(h, x, out);
      return out!;
    });
  }

  /** x: [s, H, d] (this rank's tokens) -> [size*s, H/size, d] (all tokens, this rank's head group). */
  seqToHead(x: Float32Array, s: number, H: number, d: number, out?: Float32Array): Promise<Float32Array> {
    return this.ulysses(0, 'seqToHead', x, s, H, d, out ?? new Float32Array(s * H * d));
  }

  /** y: [size*s, H/size, d] -> [s, H, d]; inverse of seqToHead and its backward. */
  headToSeq(y: Float32Array, s: number, H: number, d: number, out?: Float32Array): Promise<Float32Array> {
    return this.ulysses(1, 'headToSeq', y, s, H, d, out ?? new Float32Array(s * H * d));
  }

  /** k/v: [s, Hkv, d] -> [size*s, kvHeadsPerRank(Hkv, size), d]; replicates heads when size > Hkv. */
  seqToHeadKv(x: Float32Array, s: number, Hkv: number, d: number, out?: Float32Array): Promise<Float32Array> {
    const hg = kvHeadsPerRank(Hkv, this.size);
    return this.ulysses(2, 'seqToHeadKv', x, s, Hkv, d, out ?? new Float32Array(this.size * s * hg * d));
  }

  /** Backward of seqToHeadKv: [size*s, hg, d] -> [s, Hkv, d], summing the replicas of each kv head. */
  headToSeqKvSum(g: Float32Array, s: number, Hkv: number, d: number, out?: Float32Array): Promise<Float32Array> {
    return this.ulysses(3, 'headToSeqKvSum', g, s, Hkv, d, out ?? new Float32Array(s * Hkv * d));
  }

  /**
   * Benchmarks and tests: `iters` calls of one Ulysses layout back to back on one native worker
   * thread (as the model's Ulysses attention issues them, with no hop through JS between calls),
   * after one untimed warm-up call. The head-layout side (seqToHead*: the output, headToSeq*: the
   * input) lives in a communicator buffer as the attention keeps it: on one host, in the shared
   * window, where peers write into it or read from it directly. `out` receives the result;
   * resolves to the seconds the `iters` calls took together. Every rank makes iters + 1 calls.
   */
  timeUlysses(op: UlyssesOp, x: Float32Array, s: number, H: number, d: number, out: Float32Array, iters: number): Promise<number> {
    if (!Number.isInteger(iters) || iters < 1) throw new EngineError('ERR_ARG', `timeUlysses: iters must be a positive integer, got ${iters}`);
    const kind = ULYSSES_OPS.indexOf(op);
    if (kind < 0) throw new EngineError('ERR_ARG', `timeUlysses: op must be one of ${ULYSSES_OPS.join(', ')}, got ${String(op)}`);
    return this.enqueue('timeUlysses', async (h) => native().commUlysses(kind, h, out, x, s, H, d, iters));
  }

  private ulysses(kind: number, what: string, x: Float32Array, s: number, H: number, d: number, out: Float32Array): Promise<Float32Array> {
    return this.enqueue(what, async (h) => {
      await native().commUlysses(kind, h, out, x, s, H, d);
      return out;
    });
  }

  /**
   * A communicator over `members` (ascending ranks of this one, including this rank). Every member
   * passes the same tag and members, and every rank of this communicator splits in the same order.
   */
  split(tag: string, members: number[]): Promise<Communicator> {
    return this.enqueue('split', async (h) => {
      const sub = await native().commSplit(h, tag, Int32Array.from(members));
      const info = native().commInfo(sub);
      return new Communicator(sub, info.rank, info.size, this.timeoutMs);
    });
  }

  /** Closes the connections after queued collectives settle. Safe to call twice. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = this.tail.then(async () => {
        const h = this.handle;
        this.handle = undefined;
        if (h !== undefined) await native().commClose(h);
      });
    }
    return this.closing;
  }
}
