// Sliding-window flash attention (Mistral; Qwen2/Qwen3 with use_sliding_window): forward and
// backward against the naive fp64 masked reference (query i sees keys j with i - W < j <= i, inside
// its document; padding rows see nothing) for windows 1, 63, 64, 65 (around the 64-token block
// size) and wider than the sequence, with packed documents, padding and GQA; central finite
// differences; a window at least the sequence length is exactly full causal attention; results are
// bitwise identical for 1 and 2 threads; bad windows are refused.
import t from 'tap';
import { attentionReference, flashAttentionForward, type AttentionShape } from '../../src/engine/ops/attention.js';
import { native } from '../../src/engine/native.js';
import { makeCase, maxAbs, maxDiff, reference } from './helpers/attentionReference.js';
import { fdWorst, runFlash, threadBitDiffs } from './helpers/flashHarness.js';

const FWD_TOL = 2e-5;
const BWD_TOL = 1e-4; // relative to max(1, max |reference gradient|)

const WINDOWS = [1, 63, 64, 65, 1000];

t.test('forward and backward equal the fp64 masked reference (documents, padding, GQA)', async (t) => {
  const docLens = Int32Array.of(-3, 200, 1, 70, -2, 24);
  const s = 300;
  for (const window of WINDOWS)
    for (const Hkv of [1, 2, 4]) {
      const c = makeCase({ s, H: 4, Hkv, d: 16, causal: true, docLens, window }, window + Hkv, 2);
      const f = await runFlash(c);
      const r = reference(c);
      const e = maxDiff(f.out, r.out);
      t.ok(e < FWD_TOL, `W=${window} Hkv=${Hkv}: out max |diff| ${e.toExponential(2)} < ${FWD_TOL}`);
      for (const name of ['dq', 'dk', 'dv'] as const) {
        const err = maxDiff(f[name], r[name]) / Math.max(1, maxAbs(r[name]));
        t.ok(err < BWD_TOL, `W=${window} Hkv=${Hkv}: ${name} max rel |diff| ${err.toExponential(2)} < ${BWD_TOL}`);
      }
      let nan = 0;
      for (const a of [f.out, f.dq, f.dk, f.dv]) for (const x of a) if (Number.isNaN(x)) nan++;
      t.equal(nan, 0, `W=${window} Hkv=${Hkv}: no NaN`);
    }
});

t.test('forward equals the native fp64 reference on a long single document', async (t) => {
  for (const window of [1, 64, 100, 257]) {
    const sh: AttentionShape = { s: 1000, H: 2, Hkv: 1, d: 32, causal: true, window };
    const c = makeCase(sh, window, 3);
    const out = new Float32Array(1000 * 2 * 32), lse = new Float32Array(2 * 1000), ref = new Float32Array(out.length);
    await flashAttentionForward(out, lse, c.q, c.k, c.v, sh);
    await attentionReference(ref, c.q, c.k, c.v, sh);
    const e = maxDiff(out, ref);
    t.ok(e < FWD_TOL, `W=${window} s=1000: max |diff| ${e.toExponential(2)} < ${FWD_TOL}`);
  }
});

t.test('a window of 1 is each token attending to itself only: out = v', async (t) => {
  const c = makeCase({ s: 130, H: 2, Hkv: 2, d: 8, causal: true, window: 1 }, 3, 2);
  const f = await runFlash(c);
  t.ok(maxDiff(f.out, c.v) < 1e-6, `out equals v (max |diff| ${maxDiff(f.out, c.v).toExponential(2)})`);
  // A softmax over one key has no gradient: dk is 0 up to the rounding of P = exp(S - lse) ~ 1.
  t.ok(maxAbs(f.dk) < 1e-5, `dk ~ 0 (max |dk| ${maxAbs(f.dk).toExponential(2)} < 1e-5)`);
});

t.test('a window at least the sequence (or document) length is exactly full causal attention', async (t) => {
  const docLens = Int32Array.of(100, -5, 95);
  for (const window of [100, 200, 1 << 20]) {
    const c = makeCase({ s: 200, H: 4, Hkv: 2, d: 16, causal: true, docLens, window }, 9, 2);
    const w = await runFlash(c);
    const full = await runFlash({ ...c, sh: { ...c.sh, window: 0 } });
    for (const name of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
      let differing = 0;
      for (let i = 0; i < w[name].length; i++) if (!Object.is(w[name][i], full[name][i])) differing++;
      t.equal(differing, 0, `W=${window}: ${name} bitwise equal to no window`);
    }
  }
});

t.test('backward matches central finite differences with a window', async (t) => {
  const sh: AttentionShape = { s: 11, H: 2, Hkv: 1, d: 4, causal: true, docLens: Int32Array.of(7, -1, 3), window: 3 };
  const worst = await fdWorst(makeCase(sh, 17, 1.5));
  t.ok(worst < 2e-2, `every coordinate of dq, dk, dv: max rel |analytic - FD| ${worst.toExponential(2)} < 2e-2`);
});

t.test('windowed results are bitwise identical for 1 and 2 threads', async (t) => {
  const diffs = await threadBitDiffs(makeCase({ s: 333, H: 4, Hkv: 2, d: 32, causal: true, docLens: Int32Array.of(100, -3, 150, 80), window: 65 }, 51, 2));
  for (const [name, differing] of Object.entries(diffs)) t.equal(differing, 0, `${name}: ${differing} elements differ between 1 and 2 threads`);
});

t.test('bad windows give coded errors', async (t) => {
  const sh: AttentionShape = { s: 8, H: 4, Hkv: 2, d: 4 };
  const q = new Float32Array(128), k = new Float32Array(64), v = new Float32Array(64);
  const out = new Float32Array(128), lse = new Float32Array(32);
  await t.rejects(flashAttentionForward(out, lse, q, k, v, { ...sh, window: -1 }), { code: 'ERR_ARG' }, 'negative window');
  await t.rejects(flashAttentionForward(out, lse, q, k, v, { ...sh, window: 2.5 }), { code: 'ERR_ARG' }, 'fractional window');
  await t.rejects(flashAttentionForward(out, lse, q, k, v, { ...sh, causal: false, window: 4 }), { code: 'ERR_ARG' }, 'window without causality');
  const raw = native();
  t.throws(() => raw.flashAttentionForward(out, lse, q, k, v, null, 8, 4, 2, 4, false, 0, 4), { code: 'ERR_ARG' }, 'raw: window without causality');
  t.throws(() => raw.flashAttentionForward(out, lse, q, k, v, null, 8, 4, 2, 4, true, 0, -2), { code: 'ERR_ARG' }, 'raw: negative window');
});
