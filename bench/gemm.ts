/**
 * Matrix-product rates against the machine's measured arithmetic peaks, all in one run
 * (REFERENCE §4): the fp32 FMA peak and the bf16 dot-product peak (probes on every thread), then
 * oneDNN fp32, oneDNN bf16 and OpenBLAS sgemm at square sizes and at the shapes of the small
 * model's step (examples/models/small, s tokens), each with its ratio to the peak of its precision
 * (the higher of the probes before and after the products).
 * Must never report a library's rate as the limit, nor time a product's first (priming) call.
 */
import { join } from 'node:path';
import { readModelConfig } from '../src/engine/modelConfig.js';
import { packageRoot } from '../src/util/packageRoot.js';
import { benchOperand, gemmInfo, matmul, matmulBf16, matmulImpl, matmulOpenblas, productRate, toBf16 } from '../src/engine/ops/matmul.js';
import { measurePeak } from '../src/engine/ops/peak.js';
import { configureThreads } from '../src/engine/threads.js';
import type { Benchmark } from './types.js';

interface Shape {
  name: string;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
}

// Tokens per LM-head chunk in the model (native/src/model/llama.cc kCeChunk) and vocabulary ids
// per logits block (native/src/kernels/lm_head_ce.cc kVocabBlock).
const lmHeadChunk = 512;
const lmHeadBlock = 2048;

function positiveInt(name: string, v: string | boolean | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return n;
}

export const gemmBench: Benchmark = {
  options: {
    size: { type: 'string', default: '2048' },
    seq: { type: 'string', default: '4096' },
    config: { type: 'string' },
    threads: { type: 'string' },
    // Minimum seconds per measured rate (each is the best of at least 3 calls).
    seconds: { type: 'string', default: '0.3' },
  },
  async run(opts, log) {
    const threads = configureThreads({ threads: opts.threads ? Number(opts.threads) : undefined });
    const n = positiveInt('size', opts.size);
    const s = positiveInt('seq', opts.seq);
    const minSeconds = Number(opts.seconds);
    if (!(minSeconds > 0)) throw new Error(`--seconds must be a positive number, got ${opts.seconds}`);
    const configPath = typeof opts.config === 'string' ? opts.config : join(packageRoot(), 'examples', 'models', 'small', 'config.json');
    const cfg = await readModelConfig(configPath);
    const D = cfg.hiddenSize, I = cfg.intermediateSize, V = cfg.vocabSize;

    const shapes: Shape[] = [
      ...[...new Set([1024, n])].map((m) => ({ name: `square ${m}`, M: m, N: m, K: m, transA: false, transB: false })),
      { name: 'mlp up (x Wu^T)', M: s, N: I, K: D, transA: false, transB: true },
      { name: 'mlp down (a Wd^T)', M: s, N: D, K: I, transA: false, transB: true },
      { name: 'mlp dx (dy Wu)', M: s, N: D, K: I, transA: false, transB: false },
      { name: 'mlp dW (dy^T x)', M: I, N: D, K: s, transA: true, transB: false },
      { name: 'lm head logits (h W^T)', M: lmHeadChunk, N: Math.min(lmHeadBlock, V), K: D, transA: false, transB: true },
      { name: 'lm head dh (G W)', M: lmHeadChunk, N: D, K: Math.min(lmHeadBlock, V), transA: false, transB: false },
      { name: 'lm head dW (G^T h)', M: Math.min(lmHeadBlock, V), N: D, K: lmHeadChunk, transA: true, transB: false },
    ];

    const info = gemmInfo();
    log(`gemm: ${threads} threads, ${info.onednn}, bf16 kernels ${info.avx512bf16 ? 'AVX512-BF16' : 'without AVX512-BF16'}; shapes of ${configPath} at s=${s}`);
    // The machine may be shared: the peaks are probed before and after the products and the
    // higher of the two is the limit, so a load change can only make a ratio look worse, never better.
    const peak32Before = await measurePeak('fp32', threads);
    const peak16Before = await measurePeak('bf16', threads);
    const ratio = (g: number, peak: number) => (peak > 0 ? (g / peak).toFixed(2) : 'n/a');
    const rates: { sh: Shape; f32: number; bf16: number; blas: number; implF32: string; implBf16: string }[] = [];

    for (const sh of shapes) {
      const { M, N, K } = sh;
      const A = benchOperand(M * K, 7919), B = benchOperand(K * N, 104729), C = new Float32Array(M * N);
      const A16 = await toBf16(A), B16 = await toBf16(B);
      const o = { transA: sh.transA, transB: sh.transB };
      const flops = 2 * M * N * K;
      const f32 = await productRate(() => matmul(C, A, B, M, N, K, o), flops, minSeconds);
      const bf16 = await productRate(() => matmulBf16(C, A16, B16, M, N, K, o), flops, minSeconds);
      const blas = await productRate(() => matmulOpenblas(C, A, B, M, N, K, o), flops, minSeconds);
      rates.push({ sh, f32: f32.gflops, bf16: bf16.gflops, blas: blas.gflops, implF32: await matmulImpl('f32', M, N, K, o), implBf16: await matmulImpl('bf16', M, N, K, o) });
    }
    const peak32After = await measurePeak('fp32', threads);
    const peak16After = await measurePeak('bf16', threads);
    const peak32 = peak32Before.gflops >= peak32After.gflops ? peak32Before : peak32After;
    const peak16 = peak16Before.gflops >= peak16After.gflops ? peak16Before : peak16After;
    log(`  fp32 FMA peak ${peak32.gflops.toFixed(1)} GFLOP/s (${peak32.isa} chains, ${threads} threads, best of ${peak32.reps} x ${(peak32.seconds * 1e3).toFixed(0)} ms; before ${peak32Before.gflops.toFixed(1)}, after ${peak32After.gflops.toFixed(1)})`);
    log(peak16.available
      ? `  bf16 dot-product peak ${peak16.gflops.toFixed(1)} GFLOP/s (vdpbf16ps chains, ${(peak16.gflops / peak32.gflops).toFixed(2)}x fp32; before ${peak16Before.gflops.toFixed(1)}, after ${peak16After.gflops.toFixed(1)})`
      : '  bf16 dot-product peak n/a (no AVX512-BF16 on this CPU)');
    const cases = rates.map(({ sh, f32, bf16, blas, implF32, implBf16 }) => {
      log(`  ${sh.name}: ${sh.M}x${sh.N}x${sh.K} (${sh.transA ? 'A^T' : 'A'} ${sh.transB ? 'B^T' : 'B'})`);
      log(`    oneDNN fp32 ${f32.toFixed(1)} GFLOP/s (${ratio(f32, peak32.gflops)} of fp32 peak, ${implF32}), ` +
        `oneDNN bf16 ${bf16.toFixed(1)} GFLOP/s (${ratio(bf16, peak16.gflops)} of bf16 peak, ${implBf16}), ` +
        `OpenBLAS ${blas.toFixed(1)} GFLOP/s (${ratio(blas, peak32.gflops)} of fp32 peak)`);
      return {
        name: sh.name, M: sh.M, N: sh.N, K: sh.K, trans_a: sh.transA, trans_b: sh.transB,
        onednn_f32_gflops: f32, onednn_bf16_gflops: bf16, openblas_gflops: blas,
        onednn_f32_ratio_to_peak: f32 / peak32.gflops,
        onednn_bf16_ratio_to_peak: peak16.available ? bf16 / peak16.gflops : null,
        openblas_ratio_to_peak: blas / peak32.gflops,
        impl_f32: implF32, impl_bf16: implBf16,
      };
    });
    const square = cases.find((c) => c.name === `square ${n}`)!;
    return {
      bench: 'gemm',
      n,
      threads,
      onednn: info.onednn,
      avx512bf16: info.avx512bf16,
      peak_fp32_gflops: peak32.gflops,
      peak_bf16_gflops: peak16.available ? peak16.gflops : null,
      peak_fp32_before_after: [peak32Before.gflops, peak32After.gflops],
      peak_bf16_before_after: peak16.available ? [peak16Before.gflops, peak16After.gflops] : null,
      // The n^3 oneDNN fp32 rate, under the name earlier versions of this benchmark used.
      gflops: square.onednn_f32_gflops,
      cases,
    };
  },
};
