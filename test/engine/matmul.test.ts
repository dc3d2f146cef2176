import t from 'tap';
import { matmul } from '../../src/engine/ops/matmul.js';
import { Tensor } from '../../src/engine/Tensor.js';

function naive(A: Float32Array, B: Float32Array, M: number, N: number, K: number, ta: boolean, tb: boolean): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (ta ? A[k * M + i]! : A[i * K + k]!) * (tb ? B[j * K + k]! : B[k * N + j]!);
      C[i * N + j] = s;
    }
  return C;
}

t.test('matmul matches a naive fp64 product for every transpose combination', async (t) => {
  const M = 37, N = 29, K = 53;
  for (const ta of [false, true])
    for (const tb of [false, true]) {
      const A = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.37));
      const B = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.11));
      const C = new Float32Array(M * N);
      await matmul(C, A, B, M, N, K, { transA: ta, transB: tb });
      const ref = naive(A, B, M, N, K, ta, tb);
      let maxErr = 0;
      for (let i = 0; i < C.length; i++) maxErr = Math.max(maxErr, Math.abs(C[i]! - ref[i]!));
      t.ok(maxErr < 1e-4, `transA=${ta} transB=${tb}: max |diff| ${maxErr.toExponential(2)} < 1e-4`);
    }
});

t.test('matmul refuses bad arguments with coded errors', async (t) => {
  const A = new Float32Array(6), B = new Float32Array(6), C = new Float32Array(4);
  await t.rejects(matmul(C, A, B, 2, 2, 4), { code: 'ERR_SHAPE' }, 'wrong length');
  await t.rejects(matmul(C, new Float64Array(6) as unknown as Float32Array, B, 2, 2, 3), { code: 'ERR_DTYPE' }, 'wrong dtype');
  const strided = new Tensor(new Float32Array(6), [3, 2]).transpose(0, 1);
  await t.rejects(matmul(C, strided, B, 2, 2, 3), { code: 'ERR_LAYOUT' }, 'non-contiguous view');
  await t.rejects(matmul(C, A, B, 2, -1, 3), { code: 'ERR_ARG' }, 'negative size');
});
