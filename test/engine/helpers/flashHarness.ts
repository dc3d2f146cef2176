/**
 * Shared steps of the flash-attention tests: one forward + backward of a case, the worst relative
 * gap between the analytic gradients and central finite differences of L = sum(out * dout), and
 * the element count where two runs' bits differ (1 vs 2 threads). Calls the kernels through the
 * typed wrappers only; never loosens a tolerance (the tests own them).
 */
import { flashAttentionBackward, flashAttentionForward } from '../../../src/engine/ops/attention.js';
import { configureThreads, defaultThreads } from '../../../src/engine/threads.js';
import type { Case } from './attentionReference.js';

export interface FlashRun {
  out: Float32Array;
  lse: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
}

export async function runFlash(c: Case): Promise<FlashRun> {
  const { s, H, Hkv, d } = c.sh;
  const out = new Float32Array(s * H * d), lse = new Float32Array(H * s);
  await flashAttentionForward(out, lse, c.q, c.k, c.v, c.sh);
  const g = { dq: new Float32Array(s * H * d), dk: new Float32Array(s * Hkv * d), dv: new Float32Array(s * Hkv * d) };
  await flashAttentionBackward(g, c.dout, c.q, c.k, c.v, out, lse, c.sh);
  return { out, lse, ...g };
}

/** max over every coordinate of q, k, v of |analytic - FD| / max(1e-2, |FD|), step eps. */
export async function fdWorst(c: Case, eps = 1e-2): Promise<number> {
  const f = await runFlash(c);
  const { s, H, d } = c.sh;
  // L = sum(out * dout), so dL/dx is exactly what the backward computes.
  const loss = async (q: Float32Array, k: Float32Array, v: Float32Array) => {
    const out = new Float32Array(s * H * d), lse = new Float32Array(H * s);
    await flashAttentionForward(out, lse, q, k, v, c.sh);
    let l = 0;
    for (let i = 0; i < out.length; i++) l += out[i]! * c.dout[i]!;
    return l;
  };
  let worst = 0;
  for (const [name, grad] of [['q', f.dq], ['k', f.dk], ['v', f.dv]] as const) {
    for (let i = 0; i < grad.length; i++) {
      const args = { q: c.q.slice(), k: c.k.slice(), v: c.v.slice() };
      const x = args[name];
      const x0 = x[i]!;
      x[i] = x0 + eps;
      const lp = await loss(args.q, args.k, args.v);
      x[i] = x0 - eps;
      const lm = await loss(args.q, args.k, args.v);
      const fd = (lp - lm) / (2 * eps);
      worst = Math.max(worst, Math.abs(fd - grad[i]!) / Math.max(1e-2, Math.abs(fd)));
    }
  }
  return worst;
}

/** Per output name: how many elements differ in their bits between a 1-thread and a 2-thread run. */
export async function threadBitDiffs(c: Case): Promise<Record<keyof FlashRun, number>> {
  try {
    configureThreads({ threads: 1 });
    const one = await runFlash(c);
    configureThreads({ threads: 2 });
    const two = await runFlash(c);
    const out = {} as Record<keyof FlashRun, number>;
    for (const name of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
      let differing = 0;
      for (let i = 0; i < one[name].length; i++) if (!Object.is(one[name][i], two[name][i])) differing++;
      out[name] = differing;
    }
    return out;
  } finally {
    configureThreads({ threads: defaultThreads() });
  }
}
