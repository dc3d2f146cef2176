import t, { type Test } from 'tap';
import { lmHeadCeBackward, lmHeadCeForward, type LmHeadShape } from '../../src/engine/ops/attention.js';
import { native } from '../../src/engine/native.js';
import { Tensor } from '../../src/engine/Tensor.js';

function values(n: number, seed: number, amp = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.6180339 + seed * 1.7) * amp);
}

function labelsFor(n: number, vocab: number, ignored: number[] = []): Int32Array {
  const y = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % vocab);
  for (const i of ignored) y[i] = i % 2 === 0 ? -100 : -1;
  return y;
}

/** fp64: per-token loss, lse, and gradients of sum_t w_t * loss_t. */
function reference(h: Float32Array, W: Float32Array, y: Int32Array, sh: LmHeadShape, weight: (t: number) => number) {
  const { n, dim, vocab } = sh;
  const loss = new Float64Array(n), lse = new Float64Array(n);
  const dh = new Float64Array(n * dim), dW = new Float64Array(vocab * dim);
  const z = new Float64Array(vocab);
  for (let t = 0; t < n; t++) {
    let mx = -Infinity;
    for (let j = 0; j < vocab; j++) {
      let s = 0;
      for (let c = 0; c < dim; c++) s += h[t * dim + c]! * W[j * dim + c]!;
      z[j] = s;
      mx = Math.max(mx, s);
    }
    let sum = 0;
    for (let j = 0; j < vocab; j++) sum += Math.exp(z[j]! - mx);
    lse[t] = mx + Math.log(sum);
    if (y[t]! < 0) continue;
    loss[t] = lse[t]! - z[y[t]!]!;
    const w = weight(t);
    for (let j = 0; j < vocab; j++) {
      const g = w * (Math.exp(z[j]! - lse[t]!) - (j === y[t] ? 1 : 0));
      for (let c = 0; c < dim; c++) {
        dh[t * dim + c] += g * W[j * dim + c]!;
        dW[j * dim + c] += g * h[t * dim + c]!;
      }
    }
  }
  return { loss, lse, dh, dW };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const TOL = 2e-5;

/** Runs the forward (with `o`'s outputs) and the backward with and without the saved lse for one
 * chunk size and checks loss, token loss, lse, dh and dW against the fp64 reference. */
async function checkChunk(t: Test, h: Float32Array, W: Float32Array, y: Int32Array, normalizer: number, sh: LmHeadShape,
  ref: ReturnType<typeof reference>, o: { argmax?: Int32Array } = {}) {
  const chunk = sh.chunk;
  let refLoss = 0;
  for (const x of ref.loss) refLoss += x;
  refLoss /= normalizer;
  const tokenLoss = new Float32Array(sh.n), lse = new Float32Array(sh.n);
  const r = await lmHeadCeForward(h, W, y, normalizer, sh, { tokenLoss, lse, ...o });
  t.ok(Math.abs(r.loss - refLoss) < TOL, `chunk=${chunk}: loss |diff| ${Math.abs(r.loss - refLoss).toExponential(2)} < ${TOL}`);
  const el = maxDiff(tokenLoss, ref.loss), es = maxDiff(lse, ref.lse);
  t.ok(el < TOL, `chunk=${chunk}: token loss max |diff| ${el.toExponential(2)} < ${TOL}`);
  t.ok(es < TOL, `chunk=${chunk}: lse max |diff| ${es.toExponential(2)} < ${TOL}`);
  const grads: { withLse: boolean; dh: Float32Array; dW: Float32Array }[] = [];
  for (const withLse of [true, false]) {
    const dh = new Float32Array(sh.n * sh.dim), dW = new Float32Array(sh.vocab * sh.dim);
    await lmHeadCeBackward({ dh, dW }, h, W, y, normalizer, sh, withLse ? { lse } : {});
    const eh = maxDiff(dh, ref.dh), ew = maxDiff(dW, ref.dW);
    t.ok(eh < TOL, `chunk=${chunk} lse=${withLse}: dh max |diff| ${eh.toExponential(2)} < ${TOL}`);
    t.ok(ew < TOL, `chunk=${chunk} lse=${withLse}: dW max |diff| ${ew.toExponential(2)} < ${TOL}`);
    grads.push({ withLse, dh, dW });
  }
  return { r, tokenLoss, grads };
}

t.test('loss, per-token loss, lse, dh and dW match an fp64 reference for several chunk sizes', async (t) => {
  const sh0 = { n: 37, dim: 24, vocab: 101 };
  const h = values(sh0.n * sh0.dim, 1, 0.8), W = values(sh0.vocab * sh0.dim, 2, 0.8);
  const y = labelsFor(sh0.n, sh0.vocab, [0, 5, 6, 36]);
  const normalizer = 50; // a global count, larger than this shard's 33 valid tokens
  const ref = reference(h, W, y, sh0, () => 1 / normalizer);
  for (const chunk of [1, 5, 16, 37, 1000]) {
    const sh = { ...sh0, chunk };
    const { r, tokenLoss, grads } = await checkChunk(t, h, W, y, normalizer, sh, ref);
    t.equal(r.valid, 33, `chunk=${chunk}: 33 valid tokens (ignore index -100 and negative labels skipped)`);
    t.equal(tokenLoss[0], 0, `chunk=${chunk}: ignored token has loss 0`);
    for (const { withLse, dh } of grads) {
      let ignoredGrad = 0;
      for (const i of [0, 5, 6, 36]) for (let c = 0; c < sh.dim; c++) ignoredGrad += Math.abs(dh[i * sh.dim + c]!);
      t.equal(ignoredGrad, 0, `chunk=${chunk} lse=${withLse}: ignored tokens get zero dh`);
    }
  }
});

t.test('a vocabulary spanning several logits blocks (2 x 2048 + 301 ids): loss, lse, argmax and gradients', async (t) => {
  const sh0 = { n: 23, dim: 8, vocab: 2 * 2048 + 301 };
  const h = values(sh0.n * sh0.dim, 7, 0.9), W = values(sh0.vocab * sh0.dim, 8, 0.9);
  // Rows 100 and 2148 (the same place in the first two blocks) are equal and the largest logits
  // of most tokens: the argmax must keep the lower id. Row 4300 (the short last block) is the
  // largest for tokens that favour it, so the running max moves in the last block too.
  for (let c = 0; c < sh0.dim; c++) {
    W[100 * sh0.dim + c] = 3 * h[c]!;
    W[2148 * sh0.dim + c] = 3 * h[c]!;
    W[4300 * sh0.dim + c] = -4 * h[c]!;
  }
  const y = labelsFor(sh0.n, sh0.vocab, [4]);
  y[1] = 2148;
  y[2] = 4396;
  const normalizer = 22;
  const ref = reference(h, W, y, sh0, () => 1 / normalizer);
  // fp64 argmax (first of equal maxima, as the float comparison sees them: rows 100 and 2148 tie exactly)
  const refArgmax = new Int32Array(sh0.n);
  for (let i = 0; i < sh0.n; i++) {
    let best = -Infinity;
    for (let j = 0; j < sh0.vocab; j++) {
      let z = 0;
      for (let c = 0; c < sh0.dim; c++) z += h[i * sh0.dim + c]! * W[j * sh0.dim + c]!;
      if (z > best + 1e-9) (best = z), (refArgmax[i] = j);
    }
  }
  t.ok(refArgmax.includes(100) && refArgmax.includes(4300), `the argmax lands in the first and in the last block (${[...new Set(refArgmax)].join(', ')})`);
  for (const chunk of [5, 64]) {
    const argmax = new Int32Array(sh0.n).fill(-1);
    await checkChunk(t, h, W, y, normalizer, { ...sh0, chunk }, ref, { argmax });
    t.same([...argmax], [...refArgmax], `chunk=${chunk}: argmax equals the fp64 one (ties keep the lower id)`);
  }
});

t.test('a NaN hidden state gives its own token a NaN loss and leaves the others finite', async (t) => {
  const sh = { n: 6, dim: 4, vocab: 3000, chunk: 4 };
  const h = values(sh.n * sh.dim, 9), W = values(sh.vocab * sh.dim, 10);
  h[3 * sh.dim + 1] = Number.NaN;
  const tokenLoss = new Float32Array(sh.n), lse = new Float32Array(sh.n);
  await lmHeadCeForward(h, W, labelsFor(sh.n, sh.vocab), 6, sh, { tokenLoss, lse });
  t.ok(Number.isNaN(tokenLoss[3]) && Number.isNaN(lse[3]), 'token 3: NaN loss and lse');
  t.ok([0, 1, 2, 4, 5].every((i) => Number.isFinite(tokenLoss[i]) && Number.isFinite(lse[i])), 'the other tokens stay finite');
});

t.test('token weights replace 1/normalizer, and the backward accumulates', async (t) => {
  const sh = { n: 20, dim: 16, vocab: 70, chunk: 7 };
  const h = values(sh.n * sh.dim, 3), W = values(sh.vocab * sh.dim, 4);
  const y = labelsFor(sh.n, sh.vocab, [2]);
  const tw = Float32Array.from({ length: sh.n }, (_, i) => (i % 3) - 1); // includes negative and zero weights
  const ref = reference(h, W, y, sh, (i) => tw[i]!);
  const dh = new Float32Array(sh.n * sh.dim).fill(0.5), dW = new Float32Array(sh.vocab * sh.dim).fill(-0.25);
  await lmHeadCeBackward({ dh, dW }, h, W, y, Number.NaN, sh, { tokenWeight: tw });
  const eh = maxDiff(dh.map((x) => x - 0.5), ref.dh), ew = maxDiff(dW.map((x) => x + 0.25), ref.dW);
  t.ok(eh < TOL, `dh (+= onto 0.5) max |diff| ${eh.toExponential(2)} < ${TOL}`);
  t.ok(ew < TOL, `dW (+= onto -0.25) max |diff| ${ew.toExponential(2)} < ${TOL}`);
  const onlyDh = new Float32Array(sh.n * sh.dim);
  await lmHeadCeBackward({ dh: onlyDh }, h, W, y, 4, sh, { tokenWeight: tw });
  t.ok(maxDiff(onlyDh, ref.dh) < TOL, 'dW may be omitted');
});

t.test('gradients match central finite differences of the loss', async (t) => {
  const sh = { n: 5, dim: 6, vocab: 11, chunk: 2 };
  const h = values(sh.n * sh.dim, 5, 1.5), W = values(sh.vocab * sh.dim, 6, 1.5);
  const y = labelsFor(sh.n, sh.vocab, [3]);
  const normalizer = 3;
  const dh = new Float32Array(sh.n * sh.dim), dW = new Float32Array(sh.vocab * sh.dim);
  await lmHeadCeBackward({ dh, dW }, h, W, y, normalizer, sh);
  const eps = 1e-2;
  let worst = 0;
  for (const [x, g] of [[h, dh], [W, dW]] as const) {
    for (let i = 0; i < x.length; i++) {
      const x0 = x[i]!;
      x[i] = x0 + eps;
      const lp = (await lmHeadCeForward(h, W, y, normalizer, sh)).loss;
      x[i] = x0 - eps;
      const lm = (await lmHeadCeForward(h, W, y, normalizer, sh)).loss;
      x[i] = x0;
      const fd = (lp - lm) / (2 * eps);
      worst = Math.max(worst, Math.abs(fd - g[i]!) / Math.max(1e-2, Math.abs(fd)));
    }
  }
  t.ok(worst < 2e-2, `every coordinate of dh and dW: max rel |analytic - FD| ${worst.toExponential(2)} < 2e-2`);
});

t.test('bad arguments give coded errors', async (t) => {
  const sh = { n: 4, dim: 3, vocab: 5 };
  const h = new Float32Array(12), W = new Float32Array(15), y = Int32Array.of(0, 1, -100, 4);
  await t.rejects(lmHeadCeForward(new Float32Array(11), W, y, 3, sh), { code: 'ERR_SHAPE' }, 'wrong h length');
  await t.rejects(lmHeadCeForward(h, W, Int32Array.of(0, 1, 2), 3, sh), { code: 'ERR_SHAPE' }, 'wrong labels length');
  await t.rejects(lmHeadCeForward(h, W, Float32Array.of(0, 1, 2, 3) as unknown as Int32Array, 3, sh), { code: 'ERR_DTYPE' }, 'float labels');
  await t.rejects(lmHeadCeForward(h, W, Int32Array.of(0, 1, 5, 0), 3, sh), { code: 'ERR_ARG' }, 'label >= vocab');
  await t.rejects(lmHeadCeForward(h, W, y, 0, sh), { code: 'ERR_ARG' }, 'zero normalizer');
  await t.rejects(lmHeadCeForward(h, W, y, 3, { ...sh, chunk: 0 }), { code: 'ERR_ARG' }, 'zero chunk');
  const strided = new Tensor(new Float32Array(15), [3, 5]).transpose(0, 1);
  await t.rejects(lmHeadCeForward(h, strided, y, 3, sh), { code: 'ERR_LAYOUT' }, 'non-contiguous W');
  await t.rejects(lmHeadCeBackward({ dW: new Float32Array(14) }, h, W, y, 3, sh), { code: 'ERR_SHAPE' }, 'wrong dW length');
  await t.rejects(lmHeadCeBackward({ dh: new Float32Array(12) }, h, W, y, -1, sh), { code: 'ERR_ARG' }, 'negative normalizer');
  const raw = native();
  t.throws(() => raw.lmHeadCeForward(null, null, h, W, Int32Array.of(0, 9, 0, 0), 4, 3, 5, 3, 2), { code: 'ERR_ARG' }, 'raw: label >= vocab');
  t.throws(() => raw.lmHeadCeForward(null, null, h, W, y, 4, 3, 5, Number.NaN, 2), { code: 'ERR_ARG' }, 'raw: NaN normalizer');
  t.throws(() => raw.lmHeadCeBackward(null, new Float32Array(3), h, W, y, null, null, 4, 3, 5, 3, 2), { code: 'ERR_SHAPE' }, 'raw: wrong dW length');
  t.throws(() => raw.lmHeadCeBackward(null, null, h, W, y, null, new Float32Array(2), 4, 3, 5, 3, 2), { code: 'ERR_SHAPE' }, 'raw: wrong tokenWeight length');
});
