import t from 'tap';
import { gemmInfo, matmul, matmulImpl, matmulOpenblas } from '../../src/engine/ops/matmul.js';
import { Tensor } from '../../src/engine/Tensor.js';
import { normalizedError, operands, paddingChanged, productRef, U32, type ProductCase } from './helpers/gemmRef.js';
import { rand, sameBits } from './helpers/numeric.js';

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

// Any fp32 evaluation order of a K-term dot product (with or without FMA) plus the alpha / beta
// update stays within (K + 3) unit roundoffs of sum_k |alpha a b| + |beta c|: the stated bound.
const fp32Tol = (K: number) => (K + 3) * U32;

const oddCases: ProductCase[] = [];
for (const transA of [false, true])
  for (const transB of [false, true]) {
    const base = { transA, transB };
    oddCases.push(
      { ...base, M: 1, N: 67, K: 45 },
      { ...base, M: 67, N: 1, K: 45 },
      { ...base, M: 1, N: 1, K: 300 },
      { ...base, M: 5, N: 7, K: 1 },
      { ...base, M: 33, N: 17, K: 129 },
      { ...base, M: 130, N: 97, K: 300, alpha: -0.75, beta: 1 },
      { ...base, M: 47, N: 65, K: 31, beta: 0.5 },
      { ...base, M: 29, N: 19, K: 23, ld: { a: (transA ? 29 : 23) + 5, b: (transB ? 23 : 19) + 3, c: 19 + 7 }, beta: 1 },
    );
  }

t.test('fp32 matmul matches fp64 for odd shapes, transposes, leading dims and alpha / beta', async (t) => {
  let seed = 100, worst = 0;
  for (const c of oddCases) {
    const { A, B, C0 } = operands(c, seed++);
    const C = Float32Array.from(C0);
    await matmul(C, A, B, c.M, c.N, c.K, { transA: c.transA, transB: c.transB, alpha: c.alpha, beta: c.beta, ld: c.ld });
    const err = normalizedError(c, C, productRef(c, A, B, C0));
    worst = Math.max(worst, err.rel / fp32Tol(c.K));
    const name = `${c.M}x${c.N}x${c.K} tA=${c.transA} tB=${c.transB} alpha=${c.alpha ?? 1} beta=${c.beta ?? 0}${c.ld ? ` ld=${c.ld.a},${c.ld.b},${c.ld.c}` : ''}`;
    t.ok(err.rel <= fp32Tol(c.K), `${name}: max error ${err.rel.toExponential(2)} of sum|ab| (max |diff| ${err.abs.toExponential(2)}) <= ${fp32Tol(c.K).toExponential(2)}`);
    if (c.ld) t.equal(paddingChanged(c, C, C0), 0, `${name}: elements between rows of C are untouched`);
  }
  t.comment(`worst case used ${(worst * 100).toFixed(1)}% of the fp32 tolerance`);
});

t.test('fp32 matmul at the sizes the kernels block (a few hundred rows and columns)', async (t) => {
  for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    const c: ProductCase = { M: 257, N: 191, K: 513, transA, transB, beta: 1 };
    const { A, B, C0 } = operands(c, 7);
    const C = Float32Array.from(C0);
    await matmul(C, A, B, c.M, c.N, c.K, { transA, transB, beta: 1 });
    const err = normalizedError(c, C, productRef(c, A, B, C0));
    t.ok(err.rel <= fp32Tol(c.K), `257x191x513 tA=${transA} tB=${transB}: max error ${err.rel.toExponential(2)} of sum|ab| (max |diff| ${err.abs.toExponential(2)}) <= ${fp32Tol(c.K).toExponential(2)}`);
  }
});

t.test('beta = 0 never reads C; K = 0 scales C by beta', async (t) => {
  const M = 9, N = 11, K = 13;
  const A = rand(M * K, 1), B = rand(K * N, 2);
  const C = new Float32Array(M * N).fill(NaN);
  await matmul(C, A, B, M, N, K);
  t.ok(C.every(Number.isFinite), 'NaN in C does not leak into C = A B');
  const C2 = rand(M * N, 3), want = Float32Array.from(C2, (v) => v * 0.5);
  await matmul(C2, new Float32Array(0), new Float32Array(0), M, N, 0, { beta: 0.5 });
  t.same(Array.from(C2), Array.from(want), 'K = 0: C = beta C');
  await matmul(C2, new Float32Array(0), new Float32Array(0), M, N, 0);
  t.ok(C2.every((v) => v === 0), 'K = 0, beta = 0: C = 0');
});

t.test('products issued concurrently from the worker pool give the bits of one-at-a-time runs', async (t) => {
  const shapes = [[64, 48, 96], [200, 130, 70], [64, 48, 96], [33, 300, 17], [200, 130, 70], [128, 128, 128]] as const;
  const inputs = shapes.map(([M, N, K], i) => ({ M, N, K, A: rand(M * K, 40 + i), B: rand(K * N, 50 + i) }));
  const serial: Float32Array[] = [];
  for (const x of inputs) {
    const C = new Float32Array(x.M * x.N);
    await matmul(C, x.A, x.B, x.M, x.N, x.K, { transB: false });
    serial.push(C);
  }
  for (let round = 0; round < 3; round++) {
    const outs = inputs.map((x) => new Float32Array(x.M * x.N));
    await Promise.all(inputs.map((x, i) => matmul(outs[i]!, x.A, x.B, x.M, x.N, x.K)));
    const differing = outs.filter((o, i) => !sameBits(o, serial[i]!)).length;
    t.equal(differing, 0, `round ${round}: ${differing} of ${outs.length} concurrent products differ from the serial ones`);
  }
});

t.test('OpenBLAS reference and oneDNN agree; leading dimensions are checked', async (t) => {
  const c: ProductCase = { M: 70, N: 50, K: 90, transA: true, transB: true, alpha: 2, beta: 1 };
  const { A, B, C0 } = operands(c, 9);
  const C = Float32Array.from(C0);
  await matmulOpenblas(C, A, B, c.M, c.N, c.K, { transA: true, transB: true, alpha: 2, beta: 1 });
  const err = normalizedError(c, C, productRef(c, A, B, C0));
  t.ok(err.rel <= fp32Tol(c.K), `OpenBLAS: max error ${err.rel.toExponential(2)} of sum|ab| <= ${fp32Tol(c.K).toExponential(2)}`);
  await t.rejects(matmul(new Float32Array(20), new Float32Array(20), new Float32Array(20), 4, 5, 4, { ld: { a: 3, b: 5, c: 5 } }), { code: 'ERR_ARG' }, 'lda below K');
  await t.rejects(matmul(new Float32Array(20), new Float32Array(15), new Float32Array(20), 4, 5, 4, { ld: { a: 4, b: 5, c: 5 } }), { code: 'ERR_SHAPE' }, 'A shorter than its rows span');
  t.match(gemmInfo().onednn, /^oneDNN \d+\.\d+\.\d+ \(OpenMP, isa /, 'gemmInfo names oneDNN, its runtime and instruction set');
  t.match(await matmulImpl('f32', 256, 256, 256), /./, 'matmulImpl names an implementation');
});
