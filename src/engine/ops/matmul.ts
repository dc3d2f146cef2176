/** Matrix product through OpenBLAS (row-major), and the sgemm rate used as every benchmark's baseline. */
import { native } from '../native.js';
import { expectData, type Tensor } from '../Tensor.js';
import { EngineError } from '../errors.js';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
}

/** C[M,N] = alpha * op(A) op(B) + beta * C, off the main thread. */
export async function matmul(
  C: Tensor | Float32Array,
  A: Tensor | Float32Array,
  B: Tensor | Float32Array,
  M: number,
  N: number,
  K: number,
  o: MatmulOptions = {},
): Promise<void> {
  for (const [k, v] of Object.entries({ M, N, K })) {
    if (!Number.isInteger(v) || v < 0) throw new EngineError('ERR_ARG', `matmul: ${k} must be a non-negative integer, got ${v}`);
  }
  const c = expectData<Float32Array>('matmul C', C, 'f32', [M, N]);
  const a = expectData<Float32Array>('matmul A', A, 'f32', o.transA ? [K, M] : [M, K]);
  const b = expectData<Float32Array>('matmul B', B, 'f32', o.transB ? [N, K] : [K, N]);
  await native().matmul(c, a, b, M, N, K, !!o.transA, !!o.transB, o.alpha ?? 1, o.beta ?? 0);
}

/** Best-of-N sgemm n^3 rate in GFLOP/s (after one warm-up call). */
export async function sgemmRate(n = 2048, minSeconds = 1.0): Promise<{ gflops: number; seconds: number; reps: number }> {
  const A = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const B = new Float32Array(n * n).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
  const C = new Float32Array(n * n);
  await matmul(C, A, B, n, n, n);
  let best = Infinity;
  let reps = 0;
  const start = performance.now();
  while (reps < 3 || performance.now() - start < minSeconds * 1e3) {
    const t0 = performance.now();
    await matmul(C, A, B, n, n, n);
    best = Math.min(best, (performance.now() - t0) / 1e3);
    reps++;
    if (reps >= 50) break;
  }
  return { gflops: (2 * n * n * n) / best / 1e9, seconds: best, reps };
}
