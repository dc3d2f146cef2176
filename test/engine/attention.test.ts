import t from 'tap';
import {
  attentionReference,
  flashAttentionBackward,
  flashAttentionForward,
  type AttentionShape,
} from '../../src/engine/ops/attention.js';
import { native } from '../../src/engine/native.js';
import { Tensor } from '../../src/engine/Tensor.js';
import { docRanges, makeCase, maxAbs, maxDiff, reference, type Case } from './helpers/attentionReference.js';
import { fdWorst, runFlash, threadBitDiffs } from './helpers/flashHarness.js';

const FWD_TOL = 2e-5;
const BWD_TOL = 1e-4; // relative to max(1, max |reference gradient|)

/** The part of a tap test object the helper needs. */
type TapTest = { ok(condition: boolean, message: string): unknown };

async function checkAgainstReference(t: TapTest, c: Case, label: string): Promise<void> {
  const f = await runFlash(c);
  const r = reference(c);
  const e = maxDiff(f.out, r.out);
  t.ok(e < FWD_TOL, `${label}: out max |diff| ${e.toExponential(2)} < ${FWD_TOL}`);
  for (const name of ['dq', 'dk', 'dv'] as const) {
    const err = maxDiff(f[name], r[name]) / Math.max(1, maxAbs(r[name]));
    t.ok(err < BWD_TOL, `${label}: ${name} max rel |diff| ${err.toExponential(2)} < ${BWD_TOL}`);
  }
}

t.test('forward matches the native fp64 reference for H/Hkv combos, lengths and causality', async (t) => {
  for (const causal of [true, false])
    for (const Hkv of [1, 2, 4, 8])
      for (const s of [1, 63, 64, 65]) {
        const sh: AttentionShape = { s, H: 8, Hkv, d: 32, causal };
        const c = makeCase(sh, s * 10 + Hkv, 2);
        const out = new Float32Array(s * 8 * 32), lse = new Float32Array(8 * s), ref = new Float32Array(s * 8 * 32);
        await flashAttentionForward(out, lse, c.q, c.k, c.v, sh);
        await attentionReference(ref, c.q, c.k, c.v, sh);
        const e = maxDiff(out, ref);
        t.ok(e < FWD_TOL, `causal=${causal} H=8 Hkv=${Hkv} s=${s}: max |diff| ${e.toExponential(2)} < ${FWD_TOL}`);
      }
  // Head sizes that are not a multiple of the vector width, or wider than one register panel.
  for (const d of [1, 24, 80, 128]) {
    const sh: AttentionShape = { s: 130, H: 2, Hkv: 1, d, causal: true, scale: 0.3 };
    const c = makeCase(sh, d, 1);
    const out = new Float32Array(130 * 2 * d), lse = new Float32Array(2 * 130), ref = new Float32Array(out.length);
    await flashAttentionForward(out, lse, c.q, c.k, c.v, sh);
    await attentionReference(ref, c.q, c.k, c.v, sh);
    const e = maxDiff(out, ref);
    t.ok(e < FWD_TOL, `d=${d} scale=0.3 s=130: max |diff| ${e.toExponential(2)} < ${FWD_TOL}`);
  }
  for (const causal of [true, false]) {
    const sh: AttentionShape = { s: 1000, H: 4, Hkv: 2, d: 64, causal };
    const c = makeCase(sh, 7, 3);
    const out = new Float32Array(1000 * 4 * 64), lse = new Float32Array(4 * 1000), ref = new Float32Array(out.length);
    await flashAttentionForward(out, lse, c.q, c.k, c.v, sh);
    await attentionReference(ref, c.q, c.k, c.v, sh);
    const e = maxDiff(out, ref);
    t.ok(e < FWD_TOL, `causal=${causal} s=1000 H=4 Hkv=2 d=64: max |diff| ${e.toExponential(2)} < ${FWD_TOL}`);
  }
});

t.test('forward and backward match an fp64 reference (out, dq, dk, dv)', async (t) => {
  for (const causal of [true, false])
    for (const Hkv of [1, 2, 4, 8])
      for (const s of [1, 63, 64, 65])
        await checkAgainstReference(t, makeCase({ s, H: 8, Hkv, d: 16, causal }, s + Hkv, 2), `causal=${causal} H=8 Hkv=${Hkv} s=${s}`);
  for (const causal of [true, false])
    await checkAgainstReference(t, makeCase({ s: 1000, H: 2, Hkv: 1, d: 16, causal }, 99, 2), `causal=${causal} s=1000 H=2 Hkv=1 d=16`);
  await checkAgainstReference(t, makeCase({ s: 150, H: 2, Hkv: 2, d: 80, causal: true }, 77, 1), 'causal s=150 H=2 Hkv=2 d=80');
});

t.test('packed documents never attend across a boundary', async (t) => {
  const docLens = Int32Array.of(1, 30, 1, 64, 1, 70, 2, 1);
  const s = docLens.reduce((a, b) => a + b, 0);
  for (const causal of [true, false]) {
    await checkAgainstReference(t, makeCase({ s, H: 4, Hkv: 2, d: 16, causal, docLens }, 5, 2), `docs causal=${causal}`);
  }
  // Changing a token of the second document must not change any output of the first or third.
  const sh: AttentionShape = { s, H: 4, Hkv: 2, d: 16, causal: false, docLens };
  const c = makeCase(sh, 11);
  const a = await runFlash(c);
  const k2 = c.k.slice();
  for (let x = 0; x < 2 * 16; x++) k2[(10 * 2) * 16 + x] += 1; // token 10 lies in document [1, 31)
  const b = await runFlash({ ...c, k: k2 });
  const rowDiff = (i: number) => maxDiff(a.out.subarray(i * 64, (i + 1) * 64), b.out.subarray(i * 64, (i + 1) * 64));
  t.equal(rowDiff(0), 0, 'document 0 untouched');
  t.equal(rowDiff(31), 0, 'document 2 untouched');
  t.equal(rowDiff(40), 0, 'document 3 untouched');
  t.ok(rowDiff(20) > 0, 'the edited document changes');
});

t.test('padding tokens (negative doc lengths) are fully masked rows: 0 output, -inf lse, 0 gradients, no NaN', async (t) => {
  const docLens = Int32Array.of(-3, 40, -70, 1, -1, 5);
  const s = 120;
  for (const causal of [true, false]) {
    const sh: AttentionShape = { s, H: 4, Hkv: 1, d: 16, causal, docLens };
    const c = makeCase(sh, 21, 2);
    const f = await runFlash(c);
    const padding = docRanges(sh).map((r) => r === null);
    let nonFinite = 0, badOut = 0, badLse = 0, badGrad = 0;
    for (const arr of [f.out, f.lse, f.dq, f.dk, f.dv]) for (const x of arr) if (Number.isNaN(x)) nonFinite++;
    for (let i = 0; i < s; i++) {
      if (!padding[i]) continue;
      for (let x = 0; x < 4 * 16; x++) {
        if (f.out[i * 64 + x] !== 0) badOut++;
        if (f.dq[i * 64 + x] !== 0) badGrad++;
      }
      for (let x = 0; x < 16; x++) if (f.dk[i * 16 + x] !== 0 || f.dv[i * 16 + x] !== 0) badGrad++;
      for (let h = 0; h < 4; h++) if (f.lse[h * s + i] !== -Infinity) badLse++;
    }
    t.equal(nonFinite, 0, `causal=${causal}: no NaN anywhere`);
    t.equal(badOut, 0, `causal=${causal}: padding rows output exactly 0`);
    t.equal(badLse, 0, `causal=${causal}: padding rows lse = -Infinity`);
    t.equal(badGrad, 0, `causal=${causal}: padding tokens get zero gradients`);
    await checkAgainstReference(t, c, `padding causal=${causal}`);
  }
});

t.test('backward matches central finite differences', async (t) => {
  const sh: AttentionShape = { s: 9, H: 2, Hkv: 1, d: 4, causal: true, docLens: Int32Array.of(5, -1, 3) };
  const worst = await fdWorst(makeCase(sh, 31, 1.5));
  t.ok(worst < 2e-2, `every coordinate of dq, dk, dv: max rel |analytic - FD| ${worst.toExponential(2)} < 2e-2`);
});

t.test('backward accumulates into dq, dk, dv', async (t) => {
  const sh: AttentionShape = { s: 70, H: 4, Hkv: 2, d: 16 };
  const c = makeCase(sh, 41);
  const f = await runFlash(c);
  const g = { dq: f.dq.slice(), dk: f.dk.slice(), dv: f.dv.slice() };
  await flashAttentionBackward(g, c.dout, c.q, c.k, c.v, f.out, f.lse, sh);
  for (const name of ['dq', 'dk', 'dv'] as const) {
    const twice = f[name].map((x) => 2 * x);
    const e = maxDiff(g[name], twice);
    t.ok(e < 1e-6, `${name}: second call adds the same gradient again (max |diff| ${e.toExponential(2)})`);
  }
});

t.test('results are bitwise identical for 1 and 2 threads', async (t) => {
  const sh: AttentionShape = { s: 333, H: 4, Hkv: 2, d: 32, causal: true, docLens: Int32Array.of(100, -3, 150, 80) };
  const diffs = await threadBitDiffs(makeCase(sh, 51, 2));
  for (const [name, differing] of Object.entries(diffs)) t.equal(differing, 0, `${name}: ${differing} elements differ between 1 and 2 threads`);
});

t.test('bad arguments give coded errors', async (t) => {
  const sh: AttentionShape = { s: 8, H: 4, Hkv: 2, d: 4 };
  const q = new Float32Array(128), k = new Float32Array(64), v = new Float32Array(64);
  const out = new Float32Array(128), lse = new Float32Array(32);
  await t.rejects(flashAttentionForward(out, lse, q, new Float32Array(63), v, sh), { code: 'ERR_SHAPE' }, 'wrong k length');
  await t.rejects(flashAttentionForward(out, new Float32Array(31), q, k, v, sh), { code: 'ERR_SHAPE' }, 'wrong lse length');
  await t.rejects(flashAttentionForward(out, lse, new Float64Array(128) as unknown as Float32Array, k, v, sh), { code: 'ERR_DTYPE' }, 'wrong dtype');
  const strided = new Tensor(new Float32Array(128), [4, 8, 4]).transpose(0, 1);
  await t.rejects(flashAttentionForward(out, lse, strided, k, v, sh), { code: 'ERR_LAYOUT' }, 'non-contiguous q');
  await t.rejects(flashAttentionForward(out, lse, q, k, v, { ...sh, Hkv: 3 }), { code: 'ERR_SHAPE' }, 'H not a multiple of Hkv');
  await t.rejects(flashAttentionForward(out, lse, q, k, v, { ...sh, docLens: Int32Array.of(3, 4) }), { code: 'ERR_SHAPE' }, 'docLens not covering s');
  await t.rejects(flashAttentionForward(out, lse, q, k, v, { ...sh, s: -1 }), { code: 'ERR_ARG' }, 'negative s');
  await t.rejects(flashAttentionForward(out, lse, q, k, v, { ...sh, scale: Number.NaN }), { code: 'ERR_ARG' }, 'NaN scale');
  const g = { dq: new Float32Array(128), dk: new Float32Array(64), dv: new Float32Array(65) };
  await t.rejects(flashAttentionBackward(g, q, q, k, v, out, lse, sh), { code: 'ERR_SHAPE' }, 'wrong dv length');
  // The binding validates on its own too (raw calls bypassing the wrapper).
  const raw = native();
  t.throws(() => raw.flashAttentionForward(out, lse, q, k, new Float32Array(3), null, 8, 4, 2, 4, true, 0), { code: 'ERR_SHAPE' }, 'raw: wrong v length');
  t.throws(() => raw.flashAttentionForward(out, lse, q, k, v, null, 8, 4, 2, 4, 'yes', 0), { code: 'ERR_ARG' }, 'raw: causal not a boolean');
  t.throws(() => raw.flashAttentionForward(out, lse, q, k, v, Int32Array.of(5), 8, 4, 2, 4, true, 0), { code: 'ERR_SHAPE' }, 'raw: docLens sum');
  t.throws(() => raw.flashAttentionForward(out, lse, q, k, v, null, 8, 4, 2, 4, true, -1), { code: 'ERR_ARG' }, 'raw: negative scale');
  t.throws(() => raw.flashAttentionBackward(g.dq, g.dk, new Float32Array(64), q, q, k, v, out, [1, 2], null, 8, 4, 2, 4, true, 0), { code: 'ERR_DTYPE' }, 'raw: lse not a Float32Array');
});
