/**
 * The CUDA kernel checks shared by test/cuda/kernels.test.ts and the device check
 * (bench/deviceCheck.ts): each case is one input set run through the CPU kernel and the CUDA op of
 * the same name (native/cuda/host_ops.cu takes the CPU binding's arguments in its order: buffers,
 * then scalars); every buffer is then compared, inputs included (a kernel must not write what it
 * only reads). Tolerances, fp32 on both sides with reductions reordered on the GPU:
 * |gpu - cpu| <= 1e-6 + rtol * |cpu|, rtol 0 for copies, sums of two and scaling, 1e-5 for
 * element-wise transcendentals (SwiGLU, the Philox noise) and scattered sums of a few terms, 1e-4 for
 * reductions (RMSNorm statistics, GEMMs in fp32, centralization) and AdamW's sqrt/division.
 * Must never compare a buffer with itself or report a case it did not run.
 */
import { native } from '../src/engine/native.js';

type Buf = Float32Array | Int32Array;

export interface KernelCase {
  op: string;
  bufs: () => Buf[];
  scalars: number[];
  rtol: number;
}

export interface KernelResult {
  op: string;
  /** max over elements of |gpu - cpu| / tolerance: <= 1 passes */
  worst: number;
  ok: boolean;
}

/** Deterministic uniform values in [-scale, scale) (a 32-bit LCG; the same on every machine). */
function rand(n: number, seed: number, scale = 1): Float32Array {
  let x = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x / 2 ** 32 * 2 - 1) * scale;
  });
}

function ids(n: number, vocab: number, seed: number): Int32Array {
  return Int32Array.from(rand(n, seed), (v) => Math.min(vocab - 1, Math.floor((v + 1) / 2 * vocab)));
}

const zeros = (n: number) => new Float32Array(n);
const positive = (x: Float32Array) => x.map((v) => 1 + Math.abs(v));

const n = 37, dim = 96, vocab = 50, count = 4099;
export const KERNEL_CASES: readonly KernelCase[] = [
  { op: 'embeddingForward', bufs: () => [zeros(n * dim), ids(n, vocab, 1), rand(vocab * dim, 2)], scalars: [n, vocab, dim], rtol: 0 },
  { op: 'rmsnormForward', bufs: () => [zeros(n * dim), zeros(n), rand(n * dim, 3, 3), rand(dim, 4)], scalars: [n, dim, 1e-6], rtol: 1e-4 },
  { op: 'rmsnormBackward', bufs: () => [zeros(n * dim), zeros(dim), rand(n * dim, 5), rand(n * dim, 6), rand(dim, 7), positive(rand(n, 8))], scalars: [n, dim], rtol: 1e-4 },
  { op: 'swigluForward', bufs: () => [zeros(count), rand(count, 9, 6), rand(count, 10)], scalars: [count], rtol: 1e-5 },
  { op: 'swigluBackward', bufs: () => [zeros(count), zeros(count), rand(count, 11), rand(count, 12, 6), rand(count, 13)], scalars: [count], rtol: 1e-5 },
  { op: 'residualForward', bufs: () => [zeros(count), rand(count, 14), rand(count, 15)], scalars: [count], rtol: 0 },
  { op: 'embeddingBackward', bufs: () => [zeros(vocab * dim), rand(n * dim, 20), ids(n, vocab, 21)], scalars: [n, vocab, dim], rtol: 1e-5 },
  { op: 'residualBackward', bufs: () => [rand(count, 22), zeros(count), rand(count, 23)], scalars: [count], rtol: 0 },
  { op: 'linearForward', bufs: () => [zeros(n * 64), rand(n * dim, 24), rand(64 * dim, 25, 0.1), rand(64, 26)], scalars: [n, dim, 64], rtol: 1e-4 },
  { op: 'linearBackward', bufs: () => [zeros(n * dim), zeros(64 * dim), zeros(64), rand(n * 64, 27), rand(n * dim, 28), rand(64 * dim, 29, 0.1)], scalars: [n, dim, 64], rtol: 1e-4 },
  // the CPU's Philox stream: bit-identical normals where the GPU's fp32 log/sin/cos agree to an ulp or two
  { op: 'addNoise', bufs: () => [rand(count, 30)], scalars: [count, 0.05, 42, 3, 5], rtol: 1e-5 },
  { op: 'scale', bufs: () => [rand(count, 31)], scalars: [count, 0.37], rtol: 0 },
  { op: 'centralize', bufs: () => [rand(41 * 67, 32)], scalars: [41, 67], rtol: 1e-4 },
  { op: 'adamwStep', bufs: () => [rand(count, 16), rand(count, 17, 1e-2), rand(count, 18, 1e-3).map(Math.abs), rand(count, 19, 1e-1)], scalars: [count, 1e-3, 0.9, 0.999, 1e-8, 0.01, 7], rtol: 1e-4 },
];

/** Runs `c` through the CPU kernel and the CUDA op on `device`; the worst error against the tolerance. */
export async function checkKernel(c: KernelCase, device: number): Promise<KernelResult> {
  const cpu = c.bufs();
  const gpu = cpu.map((b) => b.slice());
  const cpuOp = Reflect.get(native(), c.op) as (...args: unknown[]) => Promise<unknown>;
  await cpuOp(...cpu, ...c.scalars);
  await native().cudaRunOp(c.op, device, gpu, c.scalars);
  let worst = 0;
  cpu.forEach((want, b) => {
    const got = gpu[b]!;
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(got[i]! - want[i]!);
      worst = Math.max(worst, Number.isNaN(d) ? Infinity : d / (1e-6 + c.rtol * Math.abs(want[i]!)));
    }
  });
  return { op: c.op, worst, ok: worst <= 1 };
}
