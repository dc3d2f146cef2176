// AdamW and the gradient-policy kernels: fp64 references, the Philox known-answer vectors, noise
// reproducibility and distribution, thread-count determinism, and coded errors.
import t from 'tap';
import {
  adamwStep, gradStats, addNoise, philoxNormal, philox4x32, scale, centralize, clipByGlobalNorm, zero,
} from '../../src/engine/ops/optim.js';
import { configureThreads } from '../../src/engine/threads.js';
import { Tensor } from '../../src/engine/Tensor.js';
import { rand, maxDiff, sameBits } from './helpers/numeric.js';

// fl(a * b + c) with one rounding: a*b of two floats is exact in a double; the sum is rounded
// twice (double, then float), which differs from one rounding with probability ~2^-29.
const fmaf = (a: number, b: number, c: number) => Math.fround(a * b + c);

async function withThreads<T>(n: number, body: () => Promise<T>): Promise<T> {
  const before = configureThreads();
  try {
    configureThreads({ threads: n });
    return await body();
  } finally {
    configureThreads({ threads: before });
  }
}

t.test('philox4x32-10 reproduces the Random123 known-answer vectors', async (t) => {
  const hex = (a: number[]) => a.map((v) => v.toString(16).padStart(8, '0')).join(' ');
  t.equal(hex(philox4x32([0, 0, 0, 0], [0, 0])), '6627e8d5 e169c58d bc57ac4c 9b00dbd8', 'zero counter, zero key');
  const F = 0xffffffff;
  t.equal(hex(philox4x32([F, F, F, F], [F, F])), '408f276d 41c83b0e a20bc7c6 6d5451fd', 'all-ones counter and key');
  t.equal(
    hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])),
    'd16cfe09 94fdcceb 5001e420 24126ea1',
    'pi-digits counter and key',
  );
});

t.test('philoxNormal is Box-Muller over Philox(counter = (block, 0, step, tensor), key = seed)', async (t) => {
  const key = { seed: 0x1234567, step: 5, tensor: 3 };
  let worst = 0;
  for (const block of [0, 1, 15, 16, 1000, 123457]) {
    const w = philox4x32([block, 0, key.step, key.tensor], [key.seed, 0]);
    for (let pair = 0; pair < 2; pair++) {
      const u1 = ((w[2 * pair]! >>> 8) + 1) * 2 ** -24, u2 = (w[2 * pair + 1]! >>> 8) * 2 ** -24;
      const r = Math.sqrt(-2 * Math.log(u1));
      worst = Math.max(worst,
        Math.abs(philoxNormal(key, 4 * block + 2 * pair) - r * Math.cos(2 * Math.PI * u2)),
        Math.abs(philoxNormal(key, 4 * block + 2 * pair + 1) - r * Math.sin(2 * Math.PI * u2)));
    }
  }
  t.ok(worst < 2e-6, `normals vs fp64 Box-Muller on the raw Philox words: max |diff| ${worst.toExponential(2)} < 2e-6`);
});

t.test('addNoise is keyed by (seed, step, tensor) and adds std * philoxNormal', async (t) => {
  const n = 1_000_003; // not a multiple of the 4-normal Philox block
  const key = { seed: 1234567, step: 42, tensor: 7 };
  const a = new Float32Array(n), b = new Float32Array(n);
  await addNoise(a, 1, key);
  await addNoise(b, 1, key);
  t.ok(sameBits(a, b), 'two calls with the same key give identical bits');
  const other = new Float32Array(1000), otherT = new Float32Array(1000), otherS = new Float32Array(1000);
  await addNoise(other, 1, { ...key, step: 43 });
  await addNoise(otherT, 1, { ...key, tensor: 8 });
  await addNoise(otherS, 1, { ...key, seed: 1234568 });
  const head = a.subarray(0, 1000);
  for (const [name, s] of [['step', other], ['tensor', otherT], ['seed', otherS]] as const) {
    let same = 0;
    for (let i = 0; i < 1000; i++) if (s[i] === head[i]) same++;
    t.ok(same < 5, `a different ${name} gives a different stream (${same} of 1000 values coincide)`);
  }
  let sum = 0, sq = 0, finite = true;
  for (let i = 0; i < n; i++) {
    const v = a[i]!;
    if (!Number.isFinite(v)) finite = false;
    sum += v;
    sq += v * v;
  }
  const mean = sum / n, std = Math.sqrt(sq / n - mean * mean);
  t.ok(finite, 'every sample is finite');
  // Standard errors at n = 1e6: mean 1e-3, std 7e-4; the bounds are 5 standard errors and more.
  t.ok(Math.abs(mean) < 5e-3, `mean ${mean.toExponential(2)} within 5e-3 of 0`);
  t.ok(Math.abs(std - 1) < 5e-3, `std ${std.toFixed(5)} within 5e-3 of 1`);
  let tail = 0;
  for (let i = 0; i < n; i++) if (Math.abs(a[i]!) > 1.959964) tail++;
  t.ok(Math.abs(tail / n - 0.05) < 2e-3, `P(|z| > 1.96) = ${(tail / n).toFixed(4)} within 2e-3 of 0.05`);

  const g0 = rand(n, 5);
  const g = g0.slice();
  const sd = 1e-3;
  await addNoise(g, sd, key);
  let mismatches = 0;
  for (let i = 0; i < n; i += 9973) {
    const want = fmaf(Math.fround(sd), philoxNormal(key, i), g0[i]!);
    if (g[i] !== want) mismatches++;
  }
  for (const i of [n - 1, n - 2, n - 3]) {
    const want = fmaf(Math.fround(sd), philoxNormal(key, i), g0[i]!);
    if (g[i] !== want) mismatches++;
  }
  t.equal(mismatches, 0, 'g[i] = fma(std, philoxNormal(key, i), g0[i]) for sampled indices, including the tail');
});

t.test('addNoise is bitwise identical for 1 and 2 threads', async (t) => {
  const key = { seed: 99, step: 3, tensor: 1 };
  const one = await withThreads(1, async () => { const g = new Float32Array(300_001); await addNoise(g, 0.5, key); return g; });
  const two = await withThreads(2, async () => { const g = new Float32Array(300_001); await addNoise(g, 0.5, key); return g; });
  t.ok(sameBits(one, two), `identical bits (max |diff| ${maxDiff(one, two).toExponential(2)})`);
});

function statsRef(g: Float32Array, spans: { offset: number; numel: number }[]) {
  let meanSum = 0, counted = 0, sq = 0, mx = 0, nonfinite = 0;
  const per: number[] = [];
  for (const s of spans) {
    let abs = 0;
    for (let i = s.offset; i < s.offset + s.numel; i++) {
      const v = g[i]!;
      if (!Number.isFinite(v)) { nonfinite++; continue; }
      abs += Math.abs(v);
      sq += v * v;
      mx = Math.max(mx, Math.abs(v));
    }
    per.push(s.numel > 0 ? abs / s.numel : 0);
    if (s.numel > 0) { meanSum += abs / s.numel; counted++; }
  }
  return { gradMean: counted ? meanSum / counted : 0, l2Norm: Math.sqrt(sq), maxAbs: mx, nonfinite, per };
}

t.test('gradStats matches an fp64 reference, skips non-finite values and counts each tensor once', async (t) => {
  const total = 70_001;
  const g = rand(total, 81, -1e-3, 1e-3);
  // One large tensor with small gradients and one tiny tensor with large ones: grad_mean is the
  // mean of the two per-tensor means, not the element mean.
  const spans = [{ offset: 0, numel: 50_000 }, { offset: 50_000, numel: 0 }, { offset: 50_000, numel: 3 }, { offset: 50_003, numel: 19_998 }];
  g.set([10, -20, 30], 50_000);
  g[17] = NaN; g[60_000] = Infinity; g[60_001] = -Infinity;
  const s = await gradStats(g, spans);
  const r = statsRef(g, spans);
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
  t.ok(rel(s.gradMean, r.gradMean) < 1e-12, `gradMean ${s.gradMean} vs ${r.gradMean}: rel diff ${rel(s.gradMean, r.gradMean).toExponential(2)} < 1e-12`);
  t.ok(rel(s.l2Norm, r.l2Norm) < 1e-12, `l2Norm ${s.l2Norm} vs ${r.l2Norm}: rel diff ${rel(s.l2Norm, r.l2Norm).toExponential(2)} < 1e-12`);
  t.equal(s.maxAbs, 30, 'maxAbs over finite values');
  t.equal(s.nonfinite, 3, 'one NaN and two infinities counted');
  const dPer = maxDiff(Array.from(s.perTensorMeanAbs), r.per);
  t.ok(dPer < 1e-15, `perTensorMeanAbs max |diff| ${dPer.toExponential(2)} < 1e-15`);
  t.equal(s.perTensorMeanAbs[1], 0, 'an empty tensor reports 0');
  t.ok(Math.abs(s.gradMean - 20 / 3) < 0.01, `gradMean ${s.gradMean.toFixed(4)} is dominated by the small tensor (each tensor counts once)`);
});

t.test('gradStats is bitwise identical for 1 and 2 threads', async (t) => {
  const g = rand(400_003, 82);
  const spans = [{ offset: 0, numel: 123_457 }, { offset: 123_457, numel: 276_546 }];
  const one = await withThreads(1, () => gradStats(g, spans));
  const two = await withThreads(2, () => gradStats(g, spans));
  const a = Float64Array.of(one.gradMean, one.l2Norm, one.maxAbs, one.nonfinite, ...one.perTensorMeanAbs);
  const b = Float64Array.of(two.gradMean, two.l2Norm, two.maxAbs, two.nonfinite, ...two.perTensorMeanAbs);
  t.ok(sameBits(a, b), `identical statistics (max |diff| ${maxDiff(a, b).toExponential(2)})`);
});

t.test('scale, centralize, clipByGlobalNorm and zero', async (t) => {
  const g0 = rand(50_001, 91);
  const g = g0.slice();
  await scale(g, 1.5);
  t.equal(maxDiff(g, g0.map((v) => Math.fround(v * 1.5))), 0, 'scale is fl(g * factor) exactly');

  for (const [rows, cols] of [[1, 1], [3, 37], [65, 1000]] as const) {
    const c0 = rand(rows * cols, 92, -1, 3);
    const c = new Tensor(c0.slice(), [rows, cols]);
    await centralize(c, rows, cols);
    const want = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += c0[r * cols + j]!;
      for (let j = 0; j < cols; j++) want[r * cols + j] = c0[r * cols + j]! - s / cols;
    }
    const d = maxDiff(c.data, want);
    t.ok(d < 1e-6, `centralize [${rows}, ${cols}]: max |diff| ${d.toExponential(2)} < 1e-6`);
  }

  const k = rand(1000, 93);
  const k0 = k.slice();
  t.equal(await clipByGlobalNorm(k, 0.5, 1.0), 1, 'no clipping below the threshold: factor 1');
  t.equal(maxDiff(k, k0), 0, 'and the gradient is untouched');
  const f = await clipByGlobalNorm(k, 4.0, 1.0);
  t.equal(f, Math.fround(1 / (4 + 1e-6)), `factor ${f} = max_norm / (norm + 1e-6)`);
  t.equal(maxDiff(k, k0.map((v) => Math.fround(v * f))), 0, 'gradient scaled by the factor exactly');

  const z = rand(40_000, 94);
  await zero(z);
  t.ok(z.every((v) => v === 0), 'zero clears every element');
});

t.test('adamwStep follows PyTorch AdamW (fp64 reference over several steps)', async (t) => {
  for (const wd of [0, 0.1]) {
    const n = 40_003, lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const p = rand(n, 101), m = new Float32Array(n), v = new Float32Array(n);
    const P = Float64Array.from(p), M = new Float64Array(n), V = new Float64Array(n);
    let worst = 0;
    for (let step = 1; step <= 5; step++) {
      const g = rand(n, 200 + step, -0.1, 0.1);
      if (step === 3) g.fill(0, 0, 100); // zero gradients: only decay and momentum move p
      await adamwStep(p, m, v, g, { lr, beta1: b1, beta2: b2, eps, weightDecay: wd, step });
      const bc1 = 1 - b1 ** step, bc2 = 1 - b2 ** step;
      for (let i = 0; i < n; i++) {
        P[i] = P[i]! * (1 - lr * wd);
        M[i] = b1 * M[i]! + (1 - b1) * g[i]!;
        V[i] = b2 * V[i]! + (1 - b2) * g[i]! * g[i]!;
        P[i] = P[i]! - (lr / bc1) * M[i]! / (Math.sqrt(V[i]! / bc2) + eps);
      }
      worst = Math.max(worst, maxDiff(p, P));
    }
    t.ok(worst < 1e-6, `weight_decay=${wd}: max |param diff| over 5 steps ${worst.toExponential(2)} < 1e-6`);
    const dm = maxDiff(m, M), dv = maxDiff(v, V);
    t.ok(dm < 1e-8 && dv < 1e-9, `moments: max |m diff| ${dm.toExponential(2)} < 1e-8, max |v diff| ${dv.toExponential(2)} < 1e-9`);
  }
});

t.test('bad arguments give coded errors', async (t) => {
  const f = (n: number) => new Float32Array(n);
  await t.rejects(adamwStep(f(4), f(3), f(4), f(4), { lr: 1e-3, step: 1 }), { code: 'ERR_SHAPE' }, 'adamw: m of the wrong length');
  await t.rejects(adamwStep(f(4), f(4), f(4), f(4), { lr: 1e-3, step: 0 }), { code: 'ERR_ARG' }, 'adamw: step 0');
  await t.rejects(adamwStep(f(4), f(4), f(4), new Float64Array(4) as unknown as Float32Array, { lr: 1e-3, step: 1 }), { code: 'ERR_DTYPE' }, 'adamw: Float64Array grad');
  await t.rejects(gradStats(f(10), [{ offset: 8, numel: 3 }]), { code: 'ERR_SHAPE' }, 'gradStats: span past the end');
  await t.rejects(gradStats(f(10), [{ offset: -1, numel: 3 }]), { code: 'ERR_ARG' }, 'gradStats: negative offset');
  await t.rejects(addNoise(f(4), 1, { seed: -1, step: 0, tensor: 0 }), { code: 'ERR_ARG' }, 'addNoise: negative seed');
  await t.rejects(addNoise(f(4), 1, { seed: 1, step: 2 ** 32, tensor: 0 }), { code: 'ERR_ARG' }, 'addNoise: step >= 2^32');
  await t.rejects(addNoise(f(4), NaN, { seed: 1, step: 0, tensor: 0 }), { code: 'ERR_ARG' }, 'addNoise: NaN std');
  await t.rejects(centralize(f(5), 2, 3), { code: 'ERR_SHAPE' }, 'centralize: wrong length');
  const view = new Tensor(f(6), [3, 2]).transpose(0, 1);
  await t.rejects(centralize(view, 2, 3), { code: 'ERR_LAYOUT' }, 'centralize: non-contiguous view');
  await t.rejects(clipByGlobalNorm(f(4), NaN, 1), { code: 'ERR_ARG' }, 'clip: NaN norm');
  await t.rejects(scale(f(4), Infinity), { code: 'ERR_ARG' }, 'scale: infinite factor');
  const { native } = await import('../../src/engine/native.js');
  t.throws(() => native().gradStats(f(10), Float64Array.of(0, 11)), { code: 'ERR_SHAPE' }, 'raw gradStats: span past the end');
  t.throws(() => native().gradStats(f(10), Float64Array.of(0)), { code: 'ERR_SHAPE' }, 'raw gradStats: odd span array');
  t.throws(() => native().adamwStep(f(4), f(4), f(4), f(3), 4, 1e-3, 0.9, 0.999, 1e-8, 0, 1), { code: 'ERR_SHAPE' }, 'raw adamw: short grad');
  t.throws(() => native().zero(f(4), 5), { code: 'ERR_SHAPE' }, 'raw zero: n past the end');
});
