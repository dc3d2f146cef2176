// Layer kernels (linear, embedding, RMSNorm, RoPE, SwiGLU, residual) against naive fp64
// references, finite differences, accumulation semantics, odd shapes and coded errors.
import t from 'tap';
import {
  linearForward, linearBackward, embeddingForward, embeddingBackward, rmsnormForward, rmsnormBackward,
  ropeForward, ropeBackward, swigluForward, swigluBackward, residualForward, residualBackward,
} from '../../src/engine/ops/basic.js';
import { Tensor } from '../../src/engine/Tensor.js';
import { rand, f64, maxDiff, maxRelDiff, dot, fdMaxDiff, prefilled, added } from './helpers/numeric.js';

// ---- fp64 references -------------------------------------------------------------------------

function linearRef(x: Float64Array, W: Float64Array, b: Float64Array | null, n: number, inD: number, outD: number): Float64Array {
  const y = new Float64Array(n * outD);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < outD; o++) {
      let s = b ? b[o]! : 0;
      for (let k = 0; k < inD; k++) s += x[r * inD + k]! * W[o * inD + k]!;
      y[r * outD + o] = s;
    }
  return y;
}

function rmsRef(x: Float64Array, w: Float64Array, n: number, dim: number, eps: number): Float64Array {
  const y = new Float64Array(n * dim);
  for (let r = 0; r < n; r++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[r * dim + j]! ** 2;
    const rs = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) y[r * dim + j] = x[r * dim + j]! * rs * w[j]!;
  }
  return y;
}

// sign +1: rotation; -1: its transpose.
function ropeRef(x: Float64Array, pos: Int32Array, n: number, heads: number, d: number, theta: number, sign = 1): Float64Array {
  const y = new Float64Array(x.length);
  const half = d / 2;
  for (let tk = 0; tk < n; tk++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < half; i++) {
        const a = pos[tk]! * Math.pow(theta, (-2 * i) / d);
        const c = Math.cos(a), s = sign * Math.sin(a);
        const o = (tk * heads + h) * d;
        const lo = x[o + i]!, hi = x[o + i + half]!;
        y[o + i] = lo * c - hi * s;
        y[o + i + half] = hi * c + lo * s;
      }
  return y;
}

const sig = (g: number) => 1 / (1 + Math.exp(-g));

function swigluRef(g: Float64Array, u: Float64Array): Float64Array {
  return g.map((gi, i) => gi * sig(gi) * u[i]!);
}

// ---- tests -------------------------------------------------------------------------------------

t.test('linear forward matches fp64 for odd shapes, with and without bias', async (t) => {
  for (const [n, inD, outD] of [[1, 3, 5], [3, 37, 19], [65, 70, 33]] as const)
    for (const bias of [true, false]) {
      const x = rand(n * inD, 1), W = rand(outD * inD, 2), b = bias ? rand(outD, 3) : null;
      const y = new Float32Array(n * outD).fill(7); // garbage: forward overwrites
      await linearForward(y, x, W, b, n, inD, outD);
      const d = maxDiff(y, linearRef(f64(x), f64(W), b && f64(b), n, inD, outD));
      t.ok(d < 1e-4, `n=${n} in=${inD} out=${outD} bias=${bias}: max |diff| ${d.toExponential(2)} < 1e-4`);
    }
});

t.test('linear backward accumulates the analytic gradient and agrees with finite differences', async (t) => {
  for (const [n, inD, outD] of [[1, 3, 5], [65, 37, 19]] as const) {
    const x = rand(n * inD, 11), W = rand(outD * inD, 12), b = rand(outD, 13), R = rand(n * outD, 14);
    const dx = prefilled(n * inD, 15), dW = prefilled(outD * inD, 16), db = prefilled(outD, 17);
    await linearBackward({ dx: dx.buf, dW: dW.buf, db: db.buf }, R, x, W, n, inD, outD);
    // Analytic fp64: dx = R W, dW = R^T x, db = colsum R.
    const ax = new Float64Array(n * inD), aW = new Float64Array(outD * inD), ab = new Float64Array(outD);
    for (let r = 0; r < n; r++)
      for (let o = 0; o < outD; o++) {
        const g = R[r * outD + o]!;
        ab[o] += g;
        for (let k = 0; k < inD; k++) {
          ax[r * inD + k] += g * W[o * inD + k]!;
          aW[o * inD + k] += g * x[r * inD + k]!;
        }
      }
    const gx = added(dx.buf, dx.base), gW = added(dW.buf, dW.base), gb = added(db.buf, db.base);
    for (const [name, got, want] of [['dx', gx, ax], ['dW', gW, aW], ['db', gb, ab]] as const) {
      const d = maxDiff(got, want);
      t.ok(d < 1e-4, `n=${n} ${name} vs analytic fp64 (accumulated onto a pre-filled buffer): max |diff| ${d.toExponential(2)} < 1e-4`);
    }
    const X = f64(x), Wd = f64(W), B = f64(b), Rd = f64(R);
    const loss = () => dot(linearRef(X, Wd, B, n, inD, outD), Rd);
    for (const [name, p, g] of [['x', X, gx], ['W', Wd, gW], ['b', B, gb]] as const) {
      const d = fdMaxDiff(p, g, loss, 12, 1e-4);
      t.ok(d < 1e-4, `n=${n} d${name} vs finite differences: max rel diff ${d.toExponential(2)} < 1e-4`);
    }
  }
});

t.test('linear backward with null outputs computes only the requested ones', async (t) => {
  const n = 4, inD = 3, outD = 2;
  const dW = new Float32Array(outD * inD);
  await linearBackward({ dW }, rand(n * outD, 1), rand(n * inD, 2), rand(outD * inD, 3), n, inD, outD);
  t.ok(dW.some((v) => v !== 0), 'dW was written with dx and db null');
});

t.test('embedding forward copies rows; backward scatter-adds repeated ids', async (t) => {
  const vocab = 11, dim = 19, n = 65;
  const ids = Int32Array.from({ length: n }, (_, i) => (i * 7) % vocab);
  const table = rand(vocab * dim, 21), R = rand(n * dim, 22);
  const y = new Float32Array(n * dim);
  await embeddingForward(y, ids, table, n, vocab, dim);
  let exact = true;
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) if (y[i * dim + j] !== table[ids[i]! * dim + j]) exact = false;
  t.ok(exact, 'forward rows equal the table rows bit for bit');
  const dt = prefilled(vocab * dim, 23);
  await embeddingBackward(dt.buf, R, ids, n, vocab, dim);
  const want = new Float64Array(vocab * dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) want[ids[i]! * dim + j] += R[i * dim + j]!;
  const got = added(dt.buf, dt.base);
  const d = maxDiff(got, want);
  t.ok(d < 1e-5, `dtable vs analytic fp64 (accumulated): max |diff| ${d.toExponential(2)} < 1e-5`);
  const T = f64(table), Rd = f64(R);
  const loss = () => {
    let s = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) s += T[ids[i]! * dim + j]! * Rd[i * dim + j]!;
    return s;
  };
  const fd = fdMaxDiff(T, got, loss, 20, 1e-4);
  t.ok(fd < 1e-4, `dtable vs finite differences: max rel diff ${fd.toExponential(2)} < 1e-4`);
});

t.test('rmsnorm forward and backward match fp64 and finite differences', async (t) => {
  const eps = 1e-5;
  for (const [n, dim] of [[1, 1], [3, 37], [65, 70]] as const) {
    const x = rand(n * dim, 31, -2, 2), w = rand(dim, 32, 0.5, 1.5), R = rand(n * dim, 33);
    const y = new Float32Array(n * dim), rstd = new Float32Array(n);
    await rmsnormForward(y, rstd, x, w, n, dim, eps);
    const X = f64(x), Wd = f64(w), Rd = f64(R);
    const dF = maxRelDiff(y, rmsRef(X, Wd, n, dim, eps));
    t.ok(dF < 2e-6, `n=${n} dim=${dim} forward: max rel diff ${dF.toExponential(2)} < 2e-6`);
    const dx = prefilled(n * dim, 34), dw = prefilled(dim, 35);
    await rmsnormBackward(dx.buf, dw.buf, R, x, w, rstd, n, dim);
    // Analytic fp64.
    const ax = new Float64Array(n * dim), aw = new Float64Array(dim);
    for (let r = 0; r < n; r++) {
      let ss = 0, dt = 0;
      for (let j = 0; j < dim; j++) {
        ss += X[r * dim + j]! ** 2;
        dt += Rd[r * dim + j]! * Wd[j]! * X[r * dim + j]!;
      }
      const rs = 1 / Math.sqrt(ss / dim + eps);
      for (let j = 0; j < dim; j++) {
        ax[r * dim + j] = rs * Wd[j]! * Rd[r * dim + j]! - (X[r * dim + j]! * rs ** 3 * dt) / dim;
        aw[j] += Rd[r * dim + j]! * X[r * dim + j]! * rs;
      }
    }
    const gx = added(dx.buf, dx.base), gw = added(dw.buf, dw.base);
    const dX = maxRelDiff(gx, ax), dW = maxRelDiff(gw, aw);
    t.ok(dX < 1e-5, `n=${n} dim=${dim} dx vs analytic (accumulated): max rel diff ${dX.toExponential(2)} < 1e-5`);
    t.ok(dW < 1e-5, `n=${n} dim=${dim} dw vs analytic (accumulated): max rel diff ${dW.toExponential(2)} < 1e-5`);
    const loss = () => dot(rmsRef(X, Wd, n, dim, eps), Rd);
    const fX = fdMaxDiff(X, gx, loss, 15, 1e-6), fW = fdMaxDiff(Wd, gw, loss, 15, 1e-6);
    t.ok(fX < 1e-4, `n=${n} dim=${dim} dx vs finite differences: max rel diff ${fX.toExponential(2)} < 1e-4`);
    t.ok(fW < 1e-4, `n=${n} dim=${dim} dw vs finite differences: max rel diff ${fW.toExponential(2)} < 1e-4`);
  }
});

t.test('rope forward matches fp64 at large global positions; backward is the transpose', async (t) => {
  for (const [n, heads, d, theta] of [[1, 1, 2, 10000], [3, 2, 18, 10000], [65, 3, 64, 500000]] as const) {
    const pos = Int32Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 1000 + i : 123457 * (i + 1)) % 300000);
    const x = rand(n * heads * d, 41), R = rand(n * heads * d, 42);
    const y = x.slice();
    await ropeForward(y, pos, n, heads, d, theta);
    const dF = maxDiff(y, ropeRef(f64(x), pos, n, heads, d, theta));
    t.ok(dF < 2e-6, `n=${n} heads=${heads} d=${d} theta=${theta} forward: max |diff| ${dF.toExponential(2)} < 2e-6`);
    const g = R.slice();
    await ropeBackward(g, pos, n, heads, d, theta);
    const want = ropeRef(f64(R), pos, n, heads, d, theta, -1);
    const dB = maxDiff(g, want);
    t.ok(dB < 2e-6, `backward vs analytic transpose: max |diff| ${dB.toExponential(2)} < 2e-6`);
    const X = f64(x), Rd = f64(R);
    const fd = fdMaxDiff(X, g, () => dot(ropeRef(X, pos, n, heads, d, theta), Rd), 16, 1e-4);
    t.ok(fd < 1e-5, `backward vs finite differences: max rel diff ${fd.toExponential(2)} < 1e-5`);
    // Round trip: R^T R x = x.
    await ropeBackward(y, pos, n, heads, d, theta);
    const rt = maxDiff(y, x);
    t.ok(rt < 2e-6, `forward then backward returns x: max |diff| ${rt.toExponential(2)} < 2e-6`);
  }
});

t.test('swiglu forward and backward match fp64, including saturated gates', async (t) => {
  for (const count of [1, 3, 1000, 40000]) {
    const gate = rand(count, 51, -12, 12), up = rand(count, 52, -2, 2), R = rand(count, 53);
    if (count >= 3) { gate[0] = -100; gate[1] = 100; gate[2] = 0; }
    const out = new Float32Array(count);
    await swigluForward(out, gate, up, count);
    const G = f64(gate), U = f64(up), Rd = f64(R);
    const dF = maxRelDiff(out, swigluRef(G, U));
    t.ok(dF < 2e-6, `count=${count} forward: max rel diff ${dF.toExponential(2)} < 2e-6`);
    const dg = prefilled(count, 54), du = prefilled(count, 55);
    await swigluBackward(dg.buf, du.buf, R, gate, up, count);
    const ag = G.map((g, i) => Rd[i]! * U[i]! * sig(g) * (1 + g * (1 - sig(g))));
    const au = G.map((g, i) => Rd[i]! * g * sig(g));
    const gg = added(dg.buf, dg.base), gu = added(du.buf, du.base);
    const eG = maxRelDiff(gg, ag), eU = maxRelDiff(gu, au);
    t.ok(eG < 2e-6, `count=${count} dgate vs analytic (accumulated): max rel diff ${eG.toExponential(2)} < 2e-6`);
    t.ok(eU < 2e-6, `count=${count} dup vs analytic (accumulated): max rel diff ${eU.toExponential(2)} < 2e-6`);
    const loss = () => dot(swigluRef(G, U), Rd);
    const fG = fdMaxDiff(G, gg, loss, 12, 1e-5), fU = fdMaxDiff(U, gu, loss, 12, 1e-5);
    t.ok(fG < 1e-5, `count=${count} dgate vs finite differences: max rel diff ${fG.toExponential(2)} < 1e-5`);
    t.ok(fU < 1e-5, `count=${count} dup vs finite differences: max rel diff ${fU.toExponential(2)} < 1e-5`);
  }
  // Each output alone gives the same values as both together.
  const count = 999, gate = rand(count, 56, -6, 6), up = rand(count, 57), dout = rand(count, 58);
  const bothG = new Float32Array(count), bothU = new Float32Array(count), onlyG = new Float32Array(count), onlyU = new Float32Array(count);
  await swigluBackward(bothG, bothU, dout, gate, up, count);
  await swigluBackward(onlyG, null, dout, gate, up, count);
  await swigluBackward(null, onlyU, dout, gate, up, count);
  const dOne = Math.max(maxDiff(onlyG, bothG), maxDiff(onlyU, bothU));
  t.ok(dOne < 1e-6, `dgate-only and dup-only calls match the fused call: max |diff| ${dOne.toExponential(2)} < 1e-6`);
  const nan = new Float32Array(1);
  await swigluForward(nan, Float32Array.of(NaN), Float32Array.of(1), 1);
  t.ok(Number.isNaN(nan[0]), 'a NaN gate propagates to the output');
});

t.test('residual forward is exact; backward adds dy to both inputs', async (t) => {
  const count = 40001;
  const a = rand(count, 61), b = rand(count, 62), dy = rand(count, 63);
  const y = new Float32Array(count);
  await residualForward(y, a, b, count);
  t.equal(maxDiff(y, a.map((v, i) => Math.fround(v + b[i]!))), 0, 'y = fl(a + b) exactly');
  const da = prefilled(count, 64), db = prefilled(count, 65);
  await residualBackward(da.buf, db.buf, dy, count);
  const want = da.base.map((v, i) => Math.fround(v + dy[i]!));
  t.equal(maxDiff(da.buf, want), 0, 'da = fl(da0 + dy) exactly');
  t.equal(maxDiff(db.buf, db.base.map((v, i) => Math.fround(v + dy[i]!))), 0, 'db = fl(db0 + dy) exactly');
  await residualBackward(null, db.buf, dy, count);
  t.pass('null gradient outputs are accepted');
});

t.test('bad arguments give coded errors, never a crash', async (t) => {
  const f = (n: number) => new Float32Array(n);
  await t.rejects(linearForward(f(5), f(6), f(6), null, 2, 3, 2), { code: 'ERR_SHAPE' }, 'linear: y too short');
  await t.rejects(linearForward(f(4), f(6), f(6), f(3), 2, 3, 2), { code: 'ERR_SHAPE' }, 'linear: bias of the wrong length');
  await t.rejects(linearForward(f(4), new Float64Array(6) as unknown as Float32Array, f(6), null, 2, 3, 2), { code: 'ERR_DTYPE' }, 'linear: Float64Array input');
  const view = new Tensor(f(6), [3, 2]).transpose(0, 1);
  await t.rejects(linearForward(f(4), view, f(6), null, 2, 3, 2), { code: 'ERR_LAYOUT' }, 'linear: non-contiguous view');
  await t.rejects(linearForward(f(4), f(6), f(6), null, 2, -3, 2), { code: 'ERR_ARG' }, 'linear: negative size');
  await t.rejects(linearBackward({ dx: f(5) }, f(4), f(6), f(6), 2, 3, 2), { code: 'ERR_SHAPE' }, 'linear backward: dx too short');
  const ids = Int32Array.of(0, 3);
  await t.rejects(embeddingForward(f(4), ids, f(6), 2, 3, 2), { code: 'ERR_SHAPE' }, 'embedding: id == vocab');
  await t.rejects(embeddingForward(f(4), Int32Array.of(-1, 0), f(6), 2, 3, 2), { code: 'ERR_SHAPE' }, 'embedding: negative id');
  await t.rejects(embeddingBackward(f(6), f(4), Int32Array.of(2, 7), 2, 3, 2), { code: 'ERR_SHAPE' }, 'embedding backward: id out of range');
  await t.rejects(embeddingForward(f(4), f(2) as unknown as Int32Array, f(6), 2, 3, 2), { code: 'ERR_DTYPE' }, 'embedding: float ids');
  await t.rejects(rmsnormForward(f(4), f(1), f(4), f(2), 2, 2, 1e-5), { code: 'ERR_SHAPE' }, 'rmsnorm: rstd too short');
  await t.rejects(rmsnormForward(f(4), f(2), f(4), f(2), 2, 2, NaN), { code: 'ERR_ARG' }, 'rmsnorm: NaN eps');
  await t.rejects(ropeForward(f(6), Int32Array.of(0, 1), 2, 1, 3, 10000), { code: 'ERR_SHAPE' }, 'rope: odd head dim');
  await t.rejects(ropeForward(f(8), Int32Array.of(0), 2, 1, 4, 10000), { code: 'ERR_SHAPE' }, 'rope: pos too short');
  await t.rejects(swigluForward(f(3), f(3), f(2), 3), { code: 'ERR_SHAPE' }, 'swiglu: up too short');
  await t.rejects(residualBackward(f(2), null, f(3), 3), { code: 'ERR_SHAPE' }, 'residual: da too short');
});

t.test('the raw bindings validate on their own (no TypeScript layer in front)', async (t) => {
  const { native } = await import('../../src/engine/native.js');
  const n = native();
  const f = (k: number) => new Float32Array(k);
  t.throws(() => n.linearForward(f(3), f(6), f(6), null, 2, 3, 2), { code: 'ERR_SHAPE' }, 'short y');
  t.throws(() => n.linearForward(f(4), [1, 2], f(6), null, 2, 3, 2), { code: 'ERR_DTYPE' }, 'plain array');
  t.throws(() => n.linearForward(f(4), f(6), f(6), null, 2, 1.5, 2), { code: 'ERR_ARG' }, 'fractional size');
  t.throws(() => n.ropeForward(f(6), Int32Array.of(0, 1), 2, 1, 3, 10000), { code: 'ERR_SHAPE' }, 'odd d');
  t.throws(() => n.swigluBackward(null, null, f(2), f(2), f(1), 2), { code: 'ERR_SHAPE' }, 'short up');
  await t.rejects(n.embeddingForward(f(2), Int32Array.of(5), f(6), 1, 3, 2), { code: 'ERR_SHAPE' }, 'id out of range');
});

t.test('row reductions are bitwise identical with 1 and 2 threads', async (t) => {
  const { configureThreads } = await import('../../src/engine/threads.js');
  const { sameBits } = await import('./helpers/numeric.js');
  const n = 1037, dim = 96, vocab = 50; // n*dim > the 32K-element parallel threshold; n not a block multiple
  const x = rand(n * dim, 71, -2, 2), w = rand(dim, 72), dy = rand(n * dim, 73);
  const ids = Int32Array.from({ length: n }, (_, i) => (i * 13) % vocab);
  const run = async () => {
    const rstd = new Float32Array(n), y = new Float32Array(n * dim);
    await rmsnormForward(y, rstd, x, w, n, dim, 1e-6);
    const dx = new Float32Array(n * dim), dw = new Float32Array(dim);
    await rmsnormBackward(dx, dw, dy, x, w, rstd, n, dim);
    const db = new Float32Array(dim);
    await linearBackward({ db }, dy, x, new Float32Array(dim * dim), n, dim, dim);
    const dt = new Float32Array(vocab * dim);
    await embeddingBackward(dt, dy, ids, n, vocab, dim);
    return { y, dx, dw, db, dt };
  };
  const before = configureThreads();
  try {
    configureThreads({ threads: 1 });
    const one = await run();
    configureThreads({ threads: 2 });
    const two = await run();
    for (const k of ['y', 'dx', 'dw', 'db', 'dt'] as const) {
      t.ok(sameBits(one[k], two[k]), `${k}: identical bits for 1 and 2 threads (max |diff| ${maxDiff(one[k], two[k]).toExponential(2)})`);
    }
  } finally {
    configureThreads({ threads: before });
  }
});
