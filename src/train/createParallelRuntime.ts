/**
 * The Gloo-backed ParallelRuntime (see ParallelRuntime.ts): connects the world communicator, splits
 * it into this rank's SP block and its data-parallel replica group (contiguous SP blocks, world =
 * sp x dp), and a third communicator over the SP block reserved for the model's Ulysses attention,
 * so the trainer's own 'sp' collectives can never interleave with the attention all-to-alls.
 * Gradients: SUM over the SP group, then MEAN over the DP replicas (REFERENCE §2), with the same
 * bits on every rank. Must never issue a collective that another member of the group would not
 * issue at the same point, and never leave a connection open after close().
 */
import { Communicator } from '../engine/Communicator.js';
import type { FileStoreSpec, RendezvousStore } from '../engine/stores.js';
import type { Model } from '../engine/model/index.js';
import { groupMembers } from './groupMembers.js';
import { layoutOf, type Group, type ParallelRuntime } from './ParallelRuntime.js';
import { validateParallel } from './validateParallel.js';

export interface ParallelRuntimeOptions {
  rank: number;
  world: number;
  /** sequence-parallel degree P: must divide world */
  sp: number;
  store: RendezvousStore | FileStoreSpec;
  /** deadline of the connection and of every collective (ms) */
  timeoutMs: number;
  /** all-to-alls through shared memory when every rank is on this host (default true) */
  sharedMemory?: boolean;
  /** address this rank listens on (default 127.0.0.1) */
  host?: string;
}

export async function createParallelRuntime(o: ParallelRuntimeOptions): Promise<ParallelRuntime> {
  const layout = layoutOf(o.rank, o.world, o.sp);
  const world = await Communicator.connect({ rank: o.rank, size: o.world, store: o.store, timeoutMs: o.timeoutMs, host: o.host, sharedMemory: o.sharedMemory });
  const comms: Communicator[] = [world];
  try {
    const { sp, dp } = await createSubgroups(world, layout.sp);
    comms.push(sp, dp);
    // Every rank has the same sp, so every rank makes (or skips) this split alike.
    const attn = layout.sp > 1 ? await world.split('spattn', groupMembers(layout.rank, layout.world, layout.sp).spMembers) : undefined;
    if (attn) comms.push(attn);
    return new GlooRuntime(layout, world, sp, dp, attn);
  } catch (e) {
    await Promise.allSettled(comms.map((c) => c.close()));
    throw e;
  }
}

/** Splits `world` into this rank's SP block and its data-parallel replica group (groupMembers). */
export async function createSubgroups(world: Communicator, sp: number): Promise<{ sp: Communicator; dp: Communicator }> {
  const g = groupMembers(world.rank, world.size, sp);
  const spComm = await world.split('sp', g.spMembers);
  const dpComm = await world.split('dp', g.dpMembers);
  return { sp: spComm, dp: dpComm };
}

class GlooRuntime implements ParallelRuntime {
  readonly rank: number;
  readonly world: number;
  readonly sp: number;
  readonly dp: number;
  readonly spRank: number;
  readonly dpRank: number;
  private closing: Promise<void> | undefined;
  private readonly modelComms = new Map<number, Promise<Communicator>>();

  constructor(
    layout: ReturnType<typeof layoutOf>,
    private readonly worldComm: Communicator,
    private readonly spComm: Communicator,
    private readonly dpComm: Communicator,
    private readonly attnComm: Communicator | undefined,
  ) {
    this.rank = layout.rank;
    this.world = layout.world;
    this.sp = layout.sp;
    this.dp = layout.dp;
    this.spRank = layout.spRank;
    this.dpRank = layout.dpRank;
  }

  private comm(group: Group): Communicator {
    if (group === 'sp') return this.spComm;
    if (group === 'dp') return this.dpComm;
    if (group === 'world') return this.worldComm;
    throw new Error(`unknown group ${String(group)} (expected 'sp', 'dp' or 'world')`);
  }

  async allReduceSum(buf: Float32Array | Float64Array, group: Group): Promise<void> {
    const c = this.comm(group);
    if (c.size === 1) return;
    if (buf instanceof Float32Array) return c.allReduceSum(buf);
    // fp64 (counts, loss totals; small): gather everything, sum in rank order: the same bits everywhere.
    const all = await c.allGather(buf);
    const n = buf.length;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let r = 0; r < c.size; r++) s += all[r * n + i]!;
      buf[i] = s;
    }
  }

  async broadcast(buf: Float32Array | Float64Array | Int32Array | Uint8Array, group: Group, root = 0): Promise<void> {
    const c = this.comm(group);
    if (c.size === 1) return;
    await c.broadcast(buf, root);
  }

  async allGather(buf: Float32Array, group: Group, out?: Float32Array): Promise<Float32Array> {
    const c = this.comm(group);
    if (c.size > 1) return c.allGather(buf, out);
    if (!out) return Float32Array.from(buf);
    out.set(buf);
    return out;
  }

  async reduceScatterSum(buf: Float32Array, group: Group, block = 1, out?: Float32Array): Promise<Float32Array> {
    const c = this.comm(group);
    if (c.size > 1) return c.reduceScatterSum(buf, block, out);
    if (!out) return Float32Array.from(buf);
    out.set(buf);
    return out;
  }

  async barrier(group: Group): Promise<void> {
    const c = this.comm(group);
    if (c.size === 1) return;
    await c.barrier();
  }

  async reduceGradients(grads: Float32Array): Promise<void> {
    // SUM over the SP block: each rank's gradient covers its shard's tokens of the same sequence(s).
    if (this.sp > 1) await this.spComm.allReduceSum(grads);
    if (this.dp > 1) {
      // MEAN over replicas: every element summed once on one rank (identical bits), then divided
      // here identically on every rank (a Float32Array store rounds the quotient).
      await this.dpComm.allReduceSum(grads);
      const dp = this.dp;
      for (let i = 0; i < grads.length; i++) grads[i] = grads[i]! / dp;
    }
  }

  attachModel(model: Model): void {
    if (!this.attnComm) return;
    validateParallel({ heads: model.config.numAttentionHeads, kvHeads: model.config.numKeyValueHeads, sp: this.sp, world: this.world });
    model.setSequenceParallel(this.attnComm);
  }

  async modelWorld(index = 0): Promise<Communicator | null> {
    if (this.world === 1) return null;
    let c = this.modelComms.get(index);
    if (!c) {
      c = this.worldComm.split(`modelworld${index}`, Array.from({ length: this.world }, (_, r) => r));
      this.modelComms.set(index, c);
    }
    return c;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const model = await Promise.all([...this.modelComms.values()].map((c) => c.catch(() => undefined)));
      const subs = [this.attnComm, this.spComm, this.dpComm, ...model].filter((c): c is Communicator => c !== undefined);
      await Promise.allSettled(subs.map((c) => c.close()));
      await this.worldComm.close();
    })();
    return this.closing;
  }
}
