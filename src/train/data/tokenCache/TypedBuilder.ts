/**
 * A growable typed array (doubling), for the arrays a worker builds from one batch of rows before
 * it hands them over as transferable buffers. Must never expose more than the filled length.
 */
export type Typed = Uint8Array | Uint16Array | Int32Array | Float64Array;
type Ctor<T extends Typed> = { new (n: number): T };

export class TypedBuilder<T extends Typed> {
  private buf: T;
  length = 0;

  constructor(
    private readonly ctor: Ctor<T>,
    capacity = 1024,
  ) {
    this.buf = new ctor(Math.max(16, capacity));
  }

  private grow(need: number): void {
    let cap = this.buf.length;
    while (cap < need) cap *= 2;
    const next = new this.ctor(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  push(x: number): void {
    if (this.length === this.buf.length) this.grow(this.length + 1);
    this.buf[this.length++] = x;
  }

  /** The filled part, as its own buffer (transferable; a copy only when the capacity is larger). */
  take(): T {
    const out = this.length === this.buf.length ? this.buf : (this.buf.slice(0, this.length) as T);
    this.buf = new this.ctor(16);
    this.length = 0;
    return out;
  }
}
