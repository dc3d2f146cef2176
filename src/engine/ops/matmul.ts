/**
 * Matrix products (row-major) through oneDNN: fp32, and bf16 x bf16 -> fp32 with bf16 operands
 * held as Uint16Array bit patterns; OpenBLAS sgemm as the second reference; fp32 <-> bf16
 * conversions (round to nearest even); and the sgemm rate used as every benchmark's baseline.
 */
import { native } from '../native.js';
import { expectData, type Tensor } from '../Tensor.js';
import { EngineError } from '../errors.js';
import { expectBf16 } from './bf16Data.js';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  /**
   * Leading dimensions (elements between the starts of consecutive stored rows); give all three
   * or none. With them, each operand may be longer than its matrix (a view into a larger one).
   */
  ld?: { a: number; b: number; c: number };
}

function checkSizes(what: string, sizes: Record<string, number>): void {
  for (const [k, v] of Object.entries(sizes)) {
    if (!Number.isInteger(v) || v < 0) throw new EngineError('ERR_ARG', `${what}: ${k} must be a non-negative integer, got ${v}`);
  }
}

/** C[M,N] = alpha * op(A) op(B) + beta * C, off the main thread (fp32, oneDNN). */
export async function matmul(
  C: Tensor | Float32Array,
  A: Tensor | Float32Array,
  B: Tensor | Float32Array,
  M: number,
  N: number,
  K: number,
  o: MatmulOptions = {},
): Promise<void> {
  checkSizes('matmul', { M, N, K });
  if (o.ld) {
    // Views into larger buffers: the native side checks each operand against rows and leading dimension.
    const raw = (k: string, v: Tensor | Float32Array): Float32Array => {
      if (!(v instanceof Float32Array)) throw new EngineError('ERR_DTYPE', `matmul ${k}: leading dimensions need a Float32Array`);
      return v;
    };
    await native().matmul(raw('C', C), raw('A', A), raw('B', B), M, N, K, !!o.transA, !!o.transB, o.alpha ?? 1, o.beta ?? 0, o.ld.a, o.ld.b, o.ld.c);
    return;
  }
  const c = expectData<Float32Array>('matmul C', C, 'f32', [M, N]);
  const a = expectData<Float32Array>('matmul A', A, 'f32', o.transA ? [K, M] : [M, K]);
  const b = expectData<Float32Array>('matmul B', B, 'f32', o.transB ? [N, K] : [K, N]);
  await native().matmul(c, a, b, M, N, K, !!o.transA, !!o.transB, o.alpha ?? 1, o.beta ?? 0);
}

/** C[M,N] = alpha * op(A) op(B) + beta * C with bf16 A and B (Uint16Array bit patterns), fp32 accumulation and C. */
export async function matmulBf16(
  C: Float32Array,
  A: Uint16Array,
  B: Uint16Array,
  M: number,
  N: number,
  K: number,
  o: MatmulOptions = {},
): Promise<void> {
  checkSizes('matmulBf16', { M, N, K });
  const a = expectBf16('matmulBf16 A', A), b = expectBf16('matmulBf16 B', B);
  const c = o.ld ? C : expectData<Float32Array>('matmulBf16 C', C, 'f32', [M, N]);
  if (o.ld) await native().matmulBf16(c, a, b, M, N, K, !!o.transA, !!o.transB, o.alpha ?? 1, o.beta ?? 0, o.ld.a, o.ld.b, o.ld.c);
  else await native().matmulBf16(c, a, b, M, N, K, !!o.transA, !!o.transB, o.alpha ?? 1, o.beta ?? 0);
}

/** The same product as `matmul` through OpenBLAS cblas_sgemm (no leading dimensions). */
export async function matmulOpenblas(
  C: Float32Array,
  A: Float32Array,
  B: Float32Array,
  M: number,
  N: number,
  K: number,
  o: Omit<MatmulOptions, 'ld'> = {},
): Promise<void> {
  checkSizes('matmulOpenblas', { M, N, K });
  const c = expectData<Float32Array>('matmulOpenblas C', C, 'f32', [M, N]);
  const a = expectData<Float32Array>('matmulOpenblas A', A, 'f32', o.transA ? [K, M] : [M, K]);
  const b = expectData<Float32Array>('matmulOpenblas B', B, 'f32', o.transB ? [N, K] : [K, N]);
  await native().matmulOpenblas(c, a, b, M, N, K, !!o.transA, !!o.transB, o.alpha ?? 1, o.beta ?? 0);
}

/**
 * bf16 bit patterns of `x`, rounded to nearest even (NaN stays a quiet NaN, denormals become
 * signed zeros). `portable` forces the path a CPU without AVX512-BF16 takes (the bits are the same).
 */
export async function toBf16(x: Float32Array, o: { out?: Uint16Array; portable?: boolean } = {}): Promise<Uint16Array> {
  const out = o.out ?? new Uint16Array(x.length);
  if (out.length !== x.length) throw new EngineError('ERR_SHAPE', `toBf16: out has ${out.length} elements, input ${x.length}`);
  await native().f32ToBf16(out, x, !!o.portable);
  return out;
}

/** fp32 values of bf16 bit patterns (exact). */
export async function fromBf16(x: Uint16Array, out: Float32Array = new Float32Array(x.length)): Promise<Float32Array> {
  if (out.length !== x.length) throw new EngineError('ERR_SHAPE', `fromBf16: out has ${out.length} elements, input ${x.length}`);
  await native().bf16ToF32(out, expectBf16('fromBf16 x', x));
  return out;
}

/** The implementation a product of this shape runs (e.g. "brg:avx512_core_bf16", or "fp32-fallback"). */
export async function matmulImpl(dtype: 'f32' | 'bf16', M: number, N: number, K: number, o: { transA?: boolean; transB?: boolean } = {}): Promise<string> {
  checkSizes('matmulImpl', { M, N, K });
  return native().matmulImpl(dtype === 'bf16', M, N, K, !!o.transA, !!o.transB);
}

/** What the products run on: oneDNN's version and instruction set, and whether bf16 kernels use AVX512-BF16. */
export function gemmInfo(): { onednn: string; avx512bf16: boolean } {
  return native().gemmInfo();
}

/**
 * Best-of-N rate in GFLOP/s of `run`, a product of `flops` floating-point operations (after one
 * warm-up call), repeated for at least `minSeconds` and at least 3 times.
 */
export async function productRate(
  run: () => Promise<void>,
  flops: number,
  minSeconds = 1.0,
): Promise<{ gflops: number; seconds: number; reps: number }> {
  await run();
  let best = Infinity;
  let reps = 0;
  const start = performance.now();
  while (reps < 3 || performance.now() - start < minSeconds * 1e3) {
    const t0 = performance.now();
    await run();
    best = Math.min(best, (performance.now() - t0) / 1e3);
    reps++;
    if (reps >= 50) break;
  }
  return { gflops: flops / best / 1e9, seconds: best, reps };
}

/** Deterministic values in [-0.5, 0.5) for benchmark operands. */
export function benchOperand(n: number, mult: number): Float32Array {
  return new Float32Array(n).map((_, i) => ((i * mult) % 1000) / 1000 - 0.5);
}

/** Best-of-N fp32 n^3 product rate in GFLOP/s (`matmul`, i.e. oneDNN). */
export async function sgemmRate(n = 2048, minSeconds = 1.0): Promise<{ gflops: number; seconds: number; reps: number }> {
  const A = benchOperand(n * n, 7919), B = benchOperand(n * n, 104729), C = new Float32Array(n * n);
  return productRate(() => matmul(C, A, B, n, n, n), 2 * n * n * n, minSeconds);
}
