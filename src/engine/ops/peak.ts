/**
 * The machine's arithmetic limit, measured (REFERENCE §4): independent chains of 512-bit fused
 * multiply-adds (fp32) or bf16 dot products (vdpbf16ps) on every thread at once. Never a library's
 * GEMM rate: those are compared against this.
 */
import { native } from '../native.js';
import { EngineError } from '../errors.js';

export interface PeakRate {
  /** false: the CPU lacks the instructions (bf16 without AVX512-BF16); gflops is then 0. */
  available: boolean;
  gflops: number;
  /** Wall seconds of the best rep. */
  seconds: number;
  reps: number;
  threads: number;
  /** 'avx512' or 'avx2' (fp32), 'avx512bf16' (bf16), '' when unavailable. */
  isa: string;
}

/** Best of `reps` runs of about `secondsPerRep` each, on `threads` threads, off the main thread. */
export async function measurePeak(kind: 'fp32' | 'bf16', threads: number, o: { secondsPerRep?: number; reps?: number } = {}): Promise<PeakRate> {
  if (!Number.isInteger(threads) || threads < 1) throw new EngineError('ERR_ARG', `measurePeak: threads must be a positive integer, got ${threads}`);
  return native().measurePeak(kind, threads, o.secondsPerRep ?? 0.25, o.reps ?? 5);
}
