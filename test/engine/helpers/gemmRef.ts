/**
 * References for the matrix-product and bf16 tests: an fp64 product with transposes and leading
 * dimensions, a JavaScript fp32 -> bf16 rounding (round to nearest even, the AVX512-BF16 rules),
 * and the error measure the tolerances are stated in. Shared by the in-process tests and the
 * child processes that force the fallback instruction sets.
 */
import { rand } from './numeric.js';

export interface ProductCase {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** Leading dimensions; default: the stored rows' lengths. */
  ld?: { a: number; b: number; c: number };
  alpha?: number;
  beta?: number;
}

export function lds(c: ProductCase): { a: number; b: number; c: number } {
  return c.ld ?? { a: c.transA ? c.M : c.K, b: c.transB ? c.K : c.N, c: c.N };
}

/** Stored element counts of A, B and C (rows x leading dimension, the last row only its length). */
export function spans(c: ProductCase): { a: number; b: number; c: number } {
  const l = lds(c);
  const span = (rows: number, cols: number, ld: number) => (rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols);
  return {
    a: span(c.transA ? c.K : c.M, c.transA ? c.M : c.K, l.a),
    b: span(c.transB ? c.N : c.K, c.transB ? c.K : c.N, l.b),
    c: span(c.M, c.N, l.c),
  };
}

/**
 * fp64 C = alpha op(A) op(B) + beta C over the stored layout (elements of C outside the matrix
 * are copied), and per element the scale sum_k |alpha a_ik b_kj| + |beta c_ij| that bounds the
 * rounding error of any fp32 evaluation order.
 */
export function productRef(c: ProductCase, A: ArrayLike<number>, B: ArrayLike<number>, C0: ArrayLike<number>) {
  const l = lds(c);
  const alpha = c.alpha ?? 1, beta = c.beta ?? 0;
  const out = Float64Array.from(C0), scale = new Float64Array(C0.length);
  for (let i = 0; i < c.M; i++)
    for (let j = 0; j < c.N; j++) {
      let s = 0, sa = 0;
      for (let k = 0; k < c.K; k++) {
        const a = c.transA ? A[k * l.a + i]! : A[i * l.a + k]!;
        const b = c.transB ? B[j * l.b + k]! : B[k * l.b + j]!;
        s += a * b;
        sa += Math.abs(a * b);
      }
      const old = beta === 0 ? 0 : C0[i * l.c + j]!;
      out[i * l.c + j] = alpha * s + beta * old;
      scale[i * l.c + j] = Math.abs(alpha) * sa + Math.abs(beta * old);
    }
  return { out, scale };
}

/** max over the matrix of |got - ref| / scale (elements with scale 0 must match exactly), and max |got - ref|. */
export function normalizedError(c: ProductCase, got: ArrayLike<number>, ref: { out: Float64Array; scale: Float64Array }) {
  const l = lds(c);
  let rel = 0, abs = 0;
  for (let i = 0; i < c.M; i++)
    for (let j = 0; j < c.N; j++) {
      const p = i * l.c + j;
      const d = Math.abs(got[p]! - ref.out[p]!);
      abs = Math.max(abs, Number.isNaN(d) ? Infinity : d);
      rel = Math.max(rel, d === 0 ? 0 : ref.scale[p]! > 0 ? d / ref.scale[p]! : Infinity);
    }
  return { rel, abs };
}

/** Elements of C outside the matrix (leading-dimension padding) that differ from C0. */
export function paddingChanged(c: ProductCase, got: ArrayLike<number>, C0: ArrayLike<number>): number {
  const l = lds(c);
  let changed = 0;
  for (let p = 0; p < got.length; p++) {
    const inside = Math.floor(p / l.c) < c.M && p % l.c < c.N;
    if (!inside && !Object.is(got[p], C0[p])) changed++;
  }
  return changed;
}

/** Deterministic operands for a case (values in [-1, 1)); C0 in [-1, 1) too. */
export function operands(c: ProductCase, seed: number) {
  const s = spans(c);
  return { A: rand(s.a, seed), B: rand(s.b, seed + 1), C0: rand(s.c, seed + 2) };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 bits of an fp32 value: ties to even, NaN -> quiet NaN (sign and top payload kept), denormals -> signed zero. */
export function bf16BitsRef(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const abs = u & 0x7fffffff;
  if (abs > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  if (abs < 0x00800000) return (u >>> 16) & 0x8000;
  const lower = u & 0xffff, upper = u >>> 16;
  // Round half to even on the 16 dropped bits; a carry out of the mantissa moves the exponent (to Inf at the top).
  const up = lower > 0x8000 || (lower === 0x8000 && (upper & 1) === 1);
  return (upper + (up ? 1 : 0)) & 0xffff;
}

/** fp32 value of bf16 bits. */
export function bf16ValueRef(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** The fp32 values the bf16 rounding of `x` stands for (what a bf16 product multiplies). */
export function roundedToBf16(x: Float32Array): Float32Array {
  return Float32Array.from(x, (v) => bf16ValueRef(bf16BitsRef(v)));
}

/** Unit roundoff of fp32 (24 significant bits) and of bf16 (8): the largest relative rounding error. */
export const U32 = 2 ** -24;
export const U16 = 2 ** -8;
