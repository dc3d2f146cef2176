/**
 * The fp64 attention reference of the flash-attention tests: deterministic inputs and the naive
 * forward and backward (out, dq, dk, dv) over packed documents, padding and sliding windows,
 * written from REFERENCE §3 (and HF's sliding-window mask: key j visible to query i when
 * i - W < j <= i). Test-only; never calls the kernels it checks.
 */
import type { AttentionShape } from '../../../src/engine/ops/attention.js';

/** Deterministic values in [-amp, amp). */
export function randn(n: number, seed: number, amp = 1): Float32Array {
  let x = (seed * 2654435761) >>> 0 || 1;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    a[i] = ((x / 4294967296) * 2 - 1) * amp;
  }
  return a;
}

export interface Case {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  dout: Float32Array;
  sh: AttentionShape;
}

export function makeCase(sh: AttentionShape, seed: number, amp = 1): Case {
  return {
    q: randn(sh.s * sh.H * sh.d, seed, amp),
    k: randn(sh.s * sh.Hkv * sh.d, seed + 1, amp),
    v: randn(sh.s * sh.Hkv * sh.d, seed + 2),
    dout: randn(sh.s * sh.H * sh.d, seed + 3),
    sh,
  };
}

/** Per token: [start, end) of the keys of its document, or null for a padding token. */
export function docRanges(sh: AttentionShape): ([number, number] | null)[] {
  const r: ([number, number] | null)[] = [];
  const lens = sh.docLens ?? Int32Array.of(sh.s);
  let pos = 0;
  for (const n of lens) {
    const len = Math.abs(n);
    for (let i = 0; i < len; i++) r.push(n > 0 ? [pos, pos + len] : null);
    pos += len;
  }
  return r;
}

/** fp64 attention forward and backward (dq, dk, dv for the upstream gradient c.dout). */
export function reference(c: Case): { out: Float64Array; dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { s, H, Hkv, d } = c.sh;
  const causal = c.sh.causal ?? true;
  const scale = c.sh.scale ?? 1 / Math.sqrt(d);
  const window = c.sh.window ?? 0;
  const G = H / Hkv;
  const out = new Float64Array(s * H * d), dq = new Float64Array(s * H * d);
  const dk = new Float64Array(s * Hkv * d), dv = new Float64Array(s * Hkv * d);
  const ranges = docRanges(c.sh);
  const qi = (i: number, h: number) => (i * H + h) * d;
  const ki = (j: number, h: number) => (j * Hkv + Math.floor(h / G)) * d;
  for (let h = 0; h < H; h++)
    for (let i = 0; i < s; i++) {
      const rg = ranges[i];
      if (!rg) continue;
      // Sliding window W: keys j with i - W < j <= i (inside the document).
      const j0 = window > 0 ? Math.max(rg[0], i - window + 1) : rg[0], j1 = causal ? i + 1 : rg[1];
      const p: number[] = [];
      let mx = -Infinity;
      for (let j = j0; j < j1; j++) {
        let dot = 0;
        for (let x = 0; x < d; x++) dot += c.q[qi(i, h) + x]! * c.k[ki(j, h) + x]!;
        p.push(dot * scale);
        mx = Math.max(mx, dot * scale);
      }
      let sum = 0;
      for (let a = 0; a < p.length; a++) sum += p[a] = Math.exp(p[a]! - mx);
      for (let a = 0; a < p.length; a++) p[a]! /= sum;
      for (let a = 0; a < p.length; a++)
        for (let x = 0; x < d; x++) out[qi(i, h) + x] += p[a]! * c.v[ki(j0 + a, h) + x]!;
      const dp: number[] = [];
      let D = 0;
      for (let a = 0; a < p.length; a++) {
        let g = 0;
        for (let x = 0; x < d; x++) g += c.dout[qi(i, h) + x]! * c.v[ki(j0 + a, h) + x]!;
        dp.push(g);
        D += p[a]! * g;
      }
      for (let a = 0; a < p.length; a++) {
        const ds = p[a]! * (dp[a]! - D) * scale;
        const kj = ki(j0 + a, h);
        for (let x = 0; x < d; x++) {
          dv[kj + x] += p[a]! * c.dout[qi(i, h) + x]!;
          dq[qi(i, h) + x] += ds * c.k[kj + x]!;
          dk[kj + x] += ds * c.q[qi(i, h) + x]!;
        }
      }
    }
  return { out, dq, dk, dv };
}

export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

