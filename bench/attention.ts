/**
 * Flash attention benchmark: causal forward + backward at s=4096, H=8, Hkv=4, d=64 (defaults), in
 * fp32 or, with `--bf16`, with bf16 q/k/v (REFERENCE §6; the AVX512-BF16 kernels where the CPU
 * has them). GFLOP/s uses REFERENCE §3's count (forward 4 s^2 d H, halved when causal; backward
 * 2.5x the forward) and is divided by the measured peak of the precision it runs in
 * (ratio_to_peak: the fp32 FMA peak, or the bf16 dot-product peak; probed on every thread before
 * and after, the higher of the two) and by the sgemm 2048^3 rate of the same run (ratio_to_gemm,
 * a second reference). Peak memory = the bytes of every input and output of the two calls plus the
 * kernels' own scratch high-water mark (tracked natively); it is measured again at a longer length
 * (default 16384) to show linear growth. Must never compare against figures from another run or machine.
 */
import {
  attentionScratchPeakBytes,
  flashAttentionBackward,
  flashAttentionForward,
  resetAttentionScratchPeak,
  type AttentionShape,
} from '../src/engine/ops/attention.js';
import { attentionBf16Impl, flashAttentionBackwardBf16, flashAttentionForwardBf16 } from '../src/engine/ops/bf16Ops.js';
import { sgemmRate, toBf16 } from '../src/engine/ops/matmul.js';
import { measurePeak } from '../src/engine/ops/peak.js';
import { configureThreads } from '../src/engine/threads.js';
import type { Benchmark } from './types.js';

function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.7071 + seed) * 0.8;
  return a;
}

interface Run {
  secondsFwd: number;
  secondsBwd: number;
  peakBytes: number;
}

/** The forward and backward calls of one precision over fixed inputs, and the bytes of those inputs and outputs. */
async function calls(sh: AttentionShape, bf16: boolean): Promise<{ fwd: () => Promise<void>; bwd: () => Promise<void>; ioBytes: number }> {
  const { s, H, Hkv, d } = sh;
  const q = filled(s * H * d, 1), k = filled(s * Hkv * d, 2), v = filled(s * Hkv * d, 3), dout = filled(s * H * d, 4);
  const lse = new Float32Array(H * s);
  const g = { dq: new Float32Array(s * H * d), dk: new Float32Array(s * Hkv * d), dv: new Float32Array(s * Hkv * d) };
  const bytes = (xs: ArrayBufferView[]) => xs.reduce((a, x) => a + x.byteLength, 0);
  if (!bf16) {
    const out = new Float32Array(s * H * d);
    return {
      fwd: () => flashAttentionForward(out, lse, q, k, v, sh),
      bwd: () => flashAttentionBackward(g, dout, q, k, v, out, lse, sh),
      ioBytes: bytes([q, k, v, dout, out, lse, g.dq, g.dk, g.dv]),
    };
  }
  const q16 = await toBf16(q), k16 = await toBf16(k), v16 = await toBf16(v), dout16 = await toBf16(dout);
  const out16 = new Uint16Array(s * H * d);
  return {
    fwd: () => flashAttentionForwardBf16(out16, lse, q16, k16, v16, sh),
    bwd: () => flashAttentionBackwardBf16(g, dout16, q16, k16, v16, out16, lse, sh),
    ioBytes: bytes([q16, k16, v16, dout16, out16, lse, g.dq, g.dk, g.dv]),
  };
}

/** Best of at least `reps` forward+backward runs, continuing until `minSeconds` have passed (max 4 * reps). */
async function measure(sh: AttentionShape, bf16: boolean, reps: number, minSeconds = 0): Promise<Run> {
  const { fwd, bwd, ioBytes } = await calls(sh, bf16);
  resetAttentionScratchPeak();
  let secondsFwd = Infinity, secondsBwd = Infinity;
  const start = performance.now();
  for (let r = 0; r < 4 * reps && (r < reps || performance.now() - start < minSeconds * 1e3); r++) {
    const t0 = performance.now();
    await fwd();
    const t1 = performance.now();
    await bwd();
    const t2 = performance.now();
    secondsFwd = Math.min(secondsFwd, (t1 - t0) / 1e3);
    secondsBwd = Math.min(secondsBwd, (t2 - t1) / 1e3);
  }
  return { secondsFwd, secondsBwd, peakBytes: ioBytes + attentionScratchPeakBytes() };
}

export const attentionBench: Benchmark = {
  options: {
    s: { type: 'string', default: '4096' },
    H: { type: 'string', default: '8' },
    Hkv: { type: 'string', default: '4' },
    d: { type: 'string', default: '64' },
    causal: { type: 'string', default: 'true' },
    reps: { type: 'string', default: '5' },
    /** Second length for the memory-growth check; '0' skips it. */
    'long-s': { type: 'string', default: '16384' },
    threads: { type: 'string' },
    bf16: { type: 'boolean', default: false },
  },
  async run(opts, log) {
    const threads = configureThreads({ threads: opts.threads ? Number(opts.threads) : undefined });
    const sh: AttentionShape = {
      s: Number(opts.s),
      H: Number(opts.H),
      Hkv: Number(opts.Hkv),
      d: Number(opts.d),
      causal: opts.causal !== 'false',
    };
    const reps = Math.max(1, Number(opts.reps));
    const bf16 = opts.bf16 === true;
    const kind = bf16 ? 'bf16' : 'fp32';
    // The machine may be shared: the peak is probed before and after, the higher is the limit.
    const peakBefore = await measurePeak(kind, threads);
    const gemm = await sgemmRate(2048);
    log(`attention: ${kind}${bf16 ? ` (${attentionBf16Impl()})` : ''}, sgemm 2048^3 reference ${gemm.gflops.toFixed(1)} GFLOP/s (${threads} threads)`);

    await measure({ ...sh, s: Math.min(sh.s, 1024) }, bf16, 1); // warm-up (page faults, thread pool)
    const r = await measure(sh, bf16, reps, 2);
    const peakAfter = await measurePeak(kind, threads);
    // Without AVX512-BF16 the bf16 kernels run at fp32 rates: the fp32 peak is then the limit.
    const peak = peakBefore.available || peakAfter.available
      ? (peakBefore.gflops >= peakAfter.gflops ? peakBefore : peakAfter)
      : await measurePeak('fp32', threads);
    const peakName = peak.isa === 'avx512bf16' ? 'bf16 dot-product' : 'fp32 FMA';
    const fwdFlops = (4 * sh.s * sh.s * sh.d * sh.H) / (sh.causal ? 2 : 1);
    const bwdFlops = 2.5 * fwdFlops;
    const gflops = (fwdFlops + bwdFlops) / (r.secondsFwd + r.secondsBwd) / 1e9;
    const ratio = gflops / gemm.gflops;
    log(`attention: ${peakName} peak ${peak.gflops.toFixed(1)} GFLOP/s (before ${peakBefore.gflops.toFixed(1)}, after ${peakAfter.gflops.toFixed(1)})`);
    log(
      `attention: ${sh.causal ? 'causal' : 'full'} s=${sh.s} H=${sh.H} Hkv=${sh.Hkv} d=${sh.d}: ` +
        `fwd ${(r.secondsFwd * 1e3).toFixed(1)} ms (${(fwdFlops / r.secondsFwd / 1e9).toFixed(1)} GFLOP/s), ` +
        `bwd ${(r.secondsBwd * 1e3).toFixed(1)} ms (${(bwdFlops / r.secondsBwd / 1e9).toFixed(1)} GFLOP/s), ` +
        `total ${gflops.toFixed(1)} GFLOP/s = ${(gflops / peak.gflops).toFixed(3)} of the ${peakName} peak (${ratio.toFixed(3)} x sgemm)`,
    );
    log(`attention: peak memory ${(r.peakBytes / 2 ** 20).toFixed(1)} MiB (inputs/outputs + kernel scratch)`);
    const result: Record<string, unknown> & { bench: string } = {
      bench: 'attention',
      s: sh.s,
      H: sh.H,
      Hkv: sh.Hkv,
      d: sh.d,
      causal: sh.causal,
      precision: kind,
      impl: bf16 ? attentionBf16Impl() : 'fp32',
      threads,
      seconds_fwd: r.secondsFwd,
      seconds_bwd: r.secondsBwd,
      gflops_fwd: fwdFlops / r.secondsFwd / 1e9,
      gflops_bwd: bwdFlops / r.secondsBwd / 1e9,
      gflops,
      peak_gflops: peak.gflops,
      ratio_to_peak: gflops / peak.gflops,
      gemm_gflops: gemm.gflops,
      ratio_to_gemm: ratio,
      peak_bytes: r.peakBytes,
      // Process-wide peak RSS so far (includes Node, the sgemm operands and the warm-up): a cross-check only.
      max_rss_bytes: process.resourceUsage().maxRSS * 1024,
    };
    const longS = Number(opts['long-s']);
    if (longS > 0) {
      const long = await measure({ ...sh, s: longS }, bf16, 1);
      const memRatio = long.peakBytes / r.peakBytes;
      log(
        `attention: s=${longS}: peak memory ${(long.peakBytes / 2 ** 20).toFixed(1)} MiB, ` +
          `${memRatio.toFixed(2)}x for ${(longS / sh.s).toFixed(1)}x the length ` +
          `(fwd+bwd ${((long.secondsFwd + long.secondsBwd) * 1e3).toFixed(0)} ms)`,
      );
      result[`peak_bytes_${longS}`] = long.peakBytes;
      result.long_s = longS;
      result.memory_ratio = memRatio;
      result.max_rss_bytes_long = process.resourceUsage().maxRSS * 1024;
    }
    return result;
  },
};
