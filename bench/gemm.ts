/** sgemm 2048^3 through OpenBLAS: the machine's practical fp32 arithmetic rate (GFLOP/s). */
import { matmul, sgemmRate } from '../src/engine/ops/matmul.js';
import { configureThreads } from '../src/engine/threads.js';
import type { Benchmark } from './types.js';

export const gemmBench: Benchmark = {
  options: { size: { type: 'string', default: '2048' }, threads: { type: 'string' } },
  async run(opts, log) {
    const threads = configureThreads({ threads: opts.threads ? Number(opts.threads) : undefined });
    const n = Number(opts.size);
    const r = await sgemmRate(n);
    void matmul;
    log(`gemm: sgemm ${n}x${n}x${n}, ${threads} threads: ${r.gflops.toFixed(1)} GFLOP/s (best of ${r.reps}, ${(r.seconds * 1e3).toFixed(1)} ms)`);
    return { bench: 'gemm', n, threads, gflops: r.gflops, seconds: r.seconds, reps: r.reps };
  },
};
