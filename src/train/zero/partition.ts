/**
 * The partition map of ZeRO's sharded state (REFERENCE §8): each trainable tensor's flat range is
 * split into `world` contiguous parts in rank order (ceil(numel / world) elements each, the last
 * part short or empty). A rank's part of the whole set is its parts of every tensor, packed in
 * tensor order and padded to the same length on every rank, so one all-gather of the packed parts
 * rebuilds the full buffer. Arithmetic and copies only: must never depend on anything but the
 * views and the world size (every rank computes the same map).
 */

/** One tensor's part on one rank: flat element range [offset, offset + numel) of the set. */
export interface PartSegment {
  /** index of the tensor in the set's views */
  tensor: number;
  /** element offset in the flat buffers of the set */
  offset: number;
  numel: number;
  /** element offset in the rank's packed part */
  packed: number;
}

interface TensorRange {
  offset: number;
  numel: number;
}

export class Partition {
  /** elements of every rank's packed part (padding included) */
  readonly partLength: number;
  private readonly chunks: number[];
  private readonly starts: number[];

  constructor(private readonly tensors: readonly TensorRange[], readonly world: number) {
    if (!Number.isInteger(world) || world < 1) throw new Error(`partition: world must be a positive integer, got ${world}`);
    this.chunks = tensors.map((t) => Math.ceil(t.numel / world));
    this.starts = [];
    let at = 0;
    for (const c of this.chunks) {
      this.starts.push(at);
      at += c;
    }
    this.partLength = at;
  }

  /** Rank `rank`'s segments, in tensor order (empty parts left out). */
  segments(rank: number): PartSegment[] {
    const out: PartSegment[] = [];
    this.tensors.forEach((t, i) => {
      const c = this.chunks[i]!;
      const lo = Math.min(t.numel, rank * c);
      const hi = Math.min(t.numel, lo + c);
      if (hi > lo) out.push({ tensor: i, offset: t.offset + lo, numel: hi - lo, packed: this.starts[i]! });
    });
    return out;
  }

  /** `rank`'s part of the full buffer `full`, packed (padding zero). */
  pack(full: Float32Array, rank: number, out: Float32Array = new Float32Array(this.partLength)): Float32Array {
    for (const s of this.segments(rank)) out.set(full.subarray(s.offset, s.offset + s.numel), s.packed);
    return out;
  }

  /** Writes every rank's packed part (`gathered`: the parts in rank order) into the full buffer. */
  unpackAll(gathered: Float32Array, full: Float32Array): void {
    if (gathered.length !== this.partLength * this.world) throw new Error(`partition: expected ${this.partLength * this.world} gathered elements, got ${gathered.length}`);
    for (let r = 0; r < this.world; r++) {
      const base = r * this.partLength;
      for (const s of this.segments(r)) full.set(gathered.subarray(base + s.packed, base + s.packed + s.numel), s.offset);
    }
  }

  /** The map as checkpoints record it: world, part length and each tensor's chunk. */
  describe(): { world: number; part_length: number; chunks: number[] } {
    return { world: this.world, part_length: this.partLength, chunks: [...this.chunks] };
  }
}
