/**
 * Small numeric helpers shared by the kernel tests: a seeded generator, fp64 copies, max
 * differences and a central finite-difference check. Never uses Math.random (tests must replay).
 */

/** Deterministic uniform floats in [lo, hi) (mulberry32). */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = lo + (hi - lo) * u;
  }
  return out;
}

export const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);

/** max |a - b| */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return Number.isNaN(m) ? Infinity : m;
}

/** max |a - b| / (1 + |b|) */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!));
    m = Math.max(m, Number.isNaN(d) ? Infinity : d);
  }
  return m;
}

/** sum(y * R) in fp64 */
export function dot(y: ArrayLike<number>, R: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i]! * R[i]!;
  return s;
}

/**
 * Central finite differences of `loss` with respect to `coords` coordinates of `x` (an fp64
 * parameter the loss reads), spread evenly over the array. Returns the max relative difference
 * |fd - grad| / (1 + |fd|) against `grad`.
 */
export function fdMaxDiff(x: Float64Array, grad: ArrayLike<number>, loss: () => number, coords = 12, h = 1e-5): number {
  let worst = 0;
  const step = Math.max(1, Math.floor(x.length / coords));
  for (let i = 0; i < x.length; i += step) {
    const keep = x[i]!;
    x[i] = keep + h;
    const lp = loss();
    x[i] = keep - h;
    const lm = loss();
    x[i] = keep;
    const fd = (lp - lm) / (2 * h);
    const d = Math.abs(fd - grad[i]!) / (1 + Math.abs(fd));
    worst = Math.max(worst, Number.isNaN(d) ? Infinity : d);
  }
  return worst;
}

/** Gradient buffer pre-filled with a known pattern, to check that a backward accumulates. */
export function prefilled(n: number, seed: number): { buf: Float32Array; base: Float32Array } {
  const base = rand(n, seed, -0.5, 0.5);
  return { buf: base.slice(), base };
}

/** buf - base, in fp64 (what the backward added). */
export function added(buf: Float32Array, base: Float32Array): Float64Array {
  const out = new Float64Array(buf.length);
  for (let i = 0; i < buf.length; i++) out[i] = buf[i]! - base[i]!;
  return out;
}

export function sameBits(a: Float32Array | Float64Array, b: Float32Array | Float64Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
