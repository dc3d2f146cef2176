/**
 * Per-call time of the layer and optimizer kernels at the `step` benchmark's model sizes
 * (s = 4096 tokens, hidden 512, intermediate 1408, 8 heads / 4 kv heads of 64, vocab 32000,
 * ~56M parameters), with the sgemm rate of the same run as the baseline: tells whether the
 * non-GEMM work stays small next to the GEMMs. Prints figures only; never asserts on speed.
 */
import { sgemmRate } from '../src/engine/ops/matmul.js';
import * as B from '../src/engine/ops/basic.js';
import * as O from '../src/engine/ops/optim.js';
import { configureThreads } from '../src/engine/threads.js';
import type { Benchmark } from './types.js';

async function best(f: () => Promise<unknown>, reps: number): Promise<number> {
  await f();
  let t = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f();
    t = Math.min(t, performance.now() - t0);
  }
  return t;
}

const filled = (n: number, seed: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37 + seed) * 0.5;
  return a;
};

export const kernelsBench: Benchmark = {
  options: {
    tokens: { type: 'string', default: '4096' },
    params: { type: 'string', default: '56000000' },
    reps: { type: 'string', default: '5' },
    threads: { type: 'string' },
  },
  async run(opts, log) {
    const threads = configureThreads({ threads: opts.threads ? Number(opts.threads) : undefined });
    const n = Number(opts.tokens), P = Number(opts.params), reps = Number(opts.reps);
    const dim = 512, inter = 1408, H = 8, Hkv = 4, d = 64, vocab = 32000;
    const gemm = await sgemmRate(2048, 0.5);
    log(`kernels: ${threads} threads, baseline sgemm ${gemm.gflops.toFixed(1)} GFLOP/s`);
    const x = filled(n * dim, 1), y = new Float32Array(n * dim), w = filled(dim, 2), rstd = new Float32Array(n);
    const dx = new Float32Array(n * dim), dw = new Float32Array(dim);
    const W = filled(inter * dim, 3), h = new Float32Array(n * inter), dh = filled(n * inter, 4), dW = new Float32Array(inter * dim);
    const gate = filled(n * inter, 5), up = filled(n * inter, 6), dgate = new Float32Array(n * inter), dup = new Float32Array(n * inter);
    const q = filled(n * H * d, 7), k = filled(n * Hkv * d, 8), pos = Int32Array.from({ length: n }, (_, i) => i);
    const ids = Int32Array.from({ length: n }, (_, i) => (i * 7919) % vocab), table = filled(vocab * dim, 9), dtable = new Float32Array(vocab * dim);
    const cases: [string, () => Promise<unknown>, number][] = [
      ['linear_fwd_gate', () => B.linearForward(h, x, W, null, n, dim, inter), 2 * n * dim * inter],
      ['linear_bwd_gate', () => B.linearBackward({ dx, dW }, dh, x, W, n, dim, inter), 4 * n * dim * inter],
      ['linear_db', () => B.linearBackward({ db: new Float32Array(inter) }, dh, x, W, n, dim, inter), 0],
      ['rmsnorm_fwd', () => B.rmsnormForward(y, rstd, x, w, n, dim, 1e-5), 0],
      ['rmsnorm_bwd', () => B.rmsnormBackward(dx, dw, y, x, w, rstd, n, dim), 0],
      ['rope_fwd_q', () => B.ropeForward(q, pos, n, H, d, 500000), 0],
      ['rope_fwd_k', () => B.ropeForward(k, pos, n, Hkv, d, 500000), 0],
      ['rope_bwd_q', () => B.ropeBackward(q, pos, n, H, d, 500000), 0],
      ['swiglu_fwd', () => B.swigluForward(h, gate, up, n * inter), 0],
      ['swiglu_bwd', () => B.swigluBackward(dgate, dup, dh, gate, up, n * inter), 0],
      ['residual_fwd', () => B.residualForward(y, x, y, n * dim), 0],
      ['residual_bwd', () => B.residualBackward(dx, y, x, n * dim), 0],
      ['embedding_fwd', () => B.embeddingForward(y, ids, table, n, vocab, dim), 0],
      ['embedding_bwd', () => B.embeddingBackward(dtable, x, ids, n, vocab, dim), 0],
    ];
    const out: Record<string, number> = {};
    for (const [name, f, flops] of cases) {
      const ms = await best(f, reps);
      out[`${name}_ms`] = ms;
      log(`  ${name.padEnd(16)} ${ms.toFixed(3).padStart(9)} ms${flops ? `  ${(flops / ms / 1e6).toFixed(1)} GFLOP/s (${((flops / ms / 1e6) / gemm.gflops).toFixed(2)} of sgemm)` : ''}`);
    }
    const p = filled(P, 10), m = new Float32Array(P), v = new Float32Array(P), g = filled(P, 11);
    const spans = Array.from({ length: 75 }, (_, i) => ({ offset: Math.floor((P * i) / 75), numel: Math.floor((P * (i + 1)) / 75) - Math.floor((P * i) / 75) }));
    const optim: [string, () => Promise<unknown>][] = [
      ['adamw', () => O.adamwStep(p, m, v, g, { lr: 1e-4, step: 1, weightDecay: 0.1 })],
      ['grad_stats', () => O.gradStats(g, spans)],
      ['centralize', () => O.centralize(g, Math.floor(P / 512), 512)],
      ['scale', () => O.scale(g, 1)],
      ['add_noise', () => O.addNoise(g, 0, { seed: 1, step: 1, tensor: 0 })],
      ['zero', () => O.zero(m)],
    ];
    for (const [name, f] of optim) {
      const ms = await best(f, Math.min(reps, 3));
      out[`${name}_ms`] = ms;
      log(`  ${name.padEnd(16)} ${ms.toFixed(3).padStart(9)} ms  (${(P / 1e6).toFixed(0)}M parameters)`);
    }
    return { bench: 'kernels', threads, tokens: n, params: P, gemm_gflops: gemm.gflops, ...out };
  },
};
