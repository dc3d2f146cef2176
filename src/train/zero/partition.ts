/**
 * The partition map of ZeRO's sharded state (REFERENCE §8): each trainable tensor's flat range is
 * split into `world` contiguous parts in rank order, cut at row boundaries for tensors of two or
 * more dimensions (ceil(rows / world) rows each, the last part short or empty), so a row never
 * spans two ranks and gradient centralization (a mean per row) stays within a part. A rank's part
 * of the whole set is its parts of every tensor, packed in tensor order and padded to the same
 * length on every rank, so one all-gather of the packed parts rebuilds the full buffer. Buckets
 * (runs of whole tensors) let the collectives move a bounded slice of the parts at a time.
 * Arithmetic and copies only: must never depend on anything but the views and the world size
 * (every rank computes the same map).
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

export interface TensorRange {
  offset: number;
  numel: number;
  /** the tensor's shape: parts are cut at multiples of numel / shape[0] when it has 2+ dimensions */
  shape?: readonly number[];
}

/** A run of whole tensors [first, end) whose parts lie at [lo, hi) of every rank's packed part. */
export interface Bucket {
  first: number;
  end: number;
  lo: number;
  hi: number;
}

/**
 * Elements of every rank's slices together in one bucketed collective (16 MiB of fp32: the size of
 * its world-sized buffers), unless one tensor's part alone is larger.
 */
export const BUCKET_ELEMENTS = 1 << 22;

export class Partition {
  /** elements of every rank's packed part (padding included) */
  readonly partLength: number;
  private readonly chunks: number[];
  private readonly starts: number[];
  private readonly bySegments: PartSegment[][];

  /** `chunks`: each tensor's part length as a recorded map gives it (default: cut from the shapes as above). */
  constructor(private readonly tensors: readonly TensorRange[], readonly world: number, chunks?: readonly number[]) {
    if (!Number.isInteger(world) || world < 1) throw new Error(`partition: world must be a positive integer, got ${world}`);
    if (chunks && (chunks.length !== tensors.length || chunks.some((c, i) => !Number.isInteger(c) || c < 0 || c * world < tensors[i]!.numel))) {
      throw new Error(`partition: the recorded chunks do not cover the ${tensors.length} tensors over ${world} parts`);
    }
    this.chunks = chunks ? [...chunks] : tensors.map((t) => {
      const rows = t.shape && t.shape.length >= 2 && t.shape[0]! > 0 ? t.shape[0]! : t.numel;
      const row = rows > 0 ? t.numel / rows : 1;
      return Math.ceil(rows / world) * row;
    });
    this.starts = [];
    let at = 0;
    for (const c of this.chunks) {
      this.starts.push(at);
      at += c;
    }
    this.partLength = at;
    this.bySegments = Array.from({ length: world }, (_, r) => this.cut(r));
  }

  private cut(rank: number): PartSegment[] {
    const out: PartSegment[] = [];
    this.tensors.forEach((t, i) => {
      const c = this.chunks[i]!;
      const lo = Math.min(t.numel, rank * c);
      const hi = Math.min(t.numel, lo + c);
      if (hi > lo) out.push({ tensor: i, offset: t.offset + lo, numel: hi - lo, packed: this.starts[i]! });
    });
    return out;
  }

  /** Rank `rank`'s segments, in tensor order (empty parts left out); `b`: only those of the bucket. */
  segments(rank: number, b?: Bucket): readonly PartSegment[] {
    const all = this.bySegments[rank]!;
    return b ? all.filter((s) => s.tensor >= b.first && s.tensor < b.end) : all;
  }

  /** Runs of whole tensors whose packed parts hold at most `maxElements` each (a larger single part is a bucket alone). */
  buckets(maxElements = Math.max(1 << 16, Math.floor(BUCKET_ELEMENTS / this.world))): Bucket[] {
    const out: Bucket[] = [];
    const n = this.tensors.length;
    let first = 0;
    for (let i = 0; i < n; i++) {
      if (i > first && this.starts[i]! + this.chunks[i]! - this.starts[first]! > maxElements) {
        out.push({ first, end: i, lo: this.starts[first]!, hi: this.starts[i]! });
        first = i;
      }
    }
    if (n > first) out.push({ first, end: n, lo: this.starts[first]!, hi: this.partLength });
    return out;
  }

  /** `rank`'s part of the full buffer `full`, packed (padding zero); with `b`, only the bucket's slice [b.lo, b.hi). */
  pack(full: Float32Array, rank: number, out?: Float32Array, b?: Bucket): Float32Array {
    const base = b ? b.lo : 0;
    const o = out ?? new Float32Array(b ? b.hi - b.lo : this.partLength);
    for (const s of this.segments(rank, b)) o.set(full.subarray(s.offset, s.offset + s.numel), s.packed - base);
    return o;
  }

  /** Every rank's slice of bucket `b`, in rank order (the input of a reduce-scatter over the world). */
  packRankMajor(full: Float32Array, b: Bucket, out: Float32Array = new Float32Array((b.hi - b.lo) * this.world)): Float32Array {
    const len = b.hi - b.lo;
    for (let r = 0; r < this.world; r++) this.pack(full, r, out.subarray(r * len, (r + 1) * len), b);
    return out;
  }

  /** Writes every rank's packed part (`gathered`: the parts, or bucket `b`'s slices, in rank order) into the full buffer. */
  unpackAll(gathered: Float32Array, full: Float32Array, b?: Bucket): void {
    const len = b ? b.hi - b.lo : this.partLength;
    if (gathered.length !== len * this.world) throw new Error(`partition: expected ${len * this.world} gathered elements, got ${gathered.length}`);
    const lo = b ? b.lo : 0;
    for (let r = 0; r < this.world; r++) {
      const base = r * len - lo;
      for (const s of this.segments(r, b)) full.set(gathered.subarray(base + s.packed, base + s.packed + s.numel), s.offset);
    }
  }

  /** The map as checkpoints record it: world, part length and each tensor's chunk. */
  describe(): { world: number; part_length: number; chunks: number[] } {
    return { world: this.world, part_length: this.partLength, chunks: [...this.chunks] };
  }
}
