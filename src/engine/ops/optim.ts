/**
 * Typed wrappers for AdamW and the gradient-policy kernels (REFERENCE §5): statistics over a flat
 * gradient split into tensors, seeded counter-based noise, scale, centralize, clip, zero.
 * Results are bitwise identical for any thread count and on every process, so replicas that run
 * the same calls make the same decisions. Never draw noise from Math.random or any unkeyed source.
 */
import { native } from '../native.js';
import { expectData, Tensor } from '../Tensor.js';
import { EngineError } from '../errors.js';

type F32 = Tensor | Float32Array;

function flat(what: string, v: F32): Float32Array {
  if (v instanceof Tensor) return expectData<Float32Array>(what, v, 'f32', [...v.shape]);
  const len = (v as { length?: unknown })?.length;
  return expectData<Float32Array>(what, v, 'f32', [typeof len === 'number' ? len : 0]);
}

function int(op: string, k: string, v: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new EngineError('ERR_ARG', `${op}: ${k} must be an integer in [0, ${max}], got ${v}`);
}

function finite(op: string, k: string, v: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new EngineError('ERR_ARG', `${op}: ${k} must be a finite number, got ${v}`);
}

/** One trainable tensor inside the flat gradient buffer. */
export interface GradSpan {
  offset: number;
  numel: number;
}

export interface GradStats {
  /** Mean over tensors of mean(|g|) (each non-empty tensor counts once; REFERENCE §5). */
  gradMean: number;
  /** Global L2 norm over the finite values. */
  l2Norm: number;
  /** Max |g| over the finite values. */
  maxAbs: number;
  /** Number of NaN/Inf values. */
  nonfinite: number;
  /** mean(|g|) of each tensor (finite values summed, divided by numel). */
  perTensorMeanAbs: Float64Array;
}

export async function gradStats(grad: F32, spans: readonly GradSpan[]): Promise<GradStats> {
  const g = flat('gradStats grad', grad);
  const s = new Float64Array(spans.length * 2);
  spans.forEach((sp, i) => {
    int('gradStats', `spans[${i}].offset`, sp.offset);
    int('gradStats', `spans[${i}].numel`, sp.numel);
    if (sp.offset + sp.numel > g.length) {
      throw new EngineError('ERR_SHAPE', `gradStats: spans[${i}] [${sp.offset}, ${sp.offset + sp.numel}) is outside the gradient of ${g.length} elements`);
    }
    s[2 * i] = sp.offset;
    s[2 * i + 1] = sp.numel;
  });
  return (await native().gradStats(g, s)) as GradStats;
}

/** Keys one noise stream: same key -> same bits on every process, for any thread count. */
export interface NoiseKey {
  seed: number;
  /** Optimizer step (< 2^32). */
  step: number;
  /** Tensor index (< 2^32). */
  tensor: number;
}

const U32 = 0xffffffff;

function checkKey(op: string, k: NoiseKey): void {
  int(op, 'seed', k.seed);
  int(op, 'step', k.step, U32);
  int(op, 'tensor', k.tensor, U32);
}

/** g[i] += std * philoxNormal(key, i). */
export async function addNoise(g: F32, std: number, key: NoiseKey): Promise<void> {
  checkKey('addNoise', key);
  finite('addNoise', 'std', std);
  const d = flat('addNoise g', g);
  await native().addNoise(d, d.length, std, key.seed, key.step, key.tensor);
}

/** The i-th standard normal of the stream `key` (synchronous: a few nanoseconds). */
export function philoxNormal(key: NoiseKey, i: number): number {
  checkKey('philoxNormal', key);
  int('philoxNormal', 'i', i);
  return native().philoxNormal(key.seed, key.step, key.tensor, i) as number;
}

/** The raw Philox4x32-10 block function (for known-answer tests). */
export function philox4x32(ctr: readonly [number, number, number, number], key: readonly [number, number]): number[] {
  [...ctr, ...key].forEach((v, i) => int('philox4x32', `word ${i}`, v, U32));
  return native().philox4x32(...ctr, ...key) as number[];
}

/** g *= factor */
export async function scale(g: F32, factor: number): Promise<void> {
  finite('scale', 'factor', factor);
  const d = flat('scale g', g);
  await native().scale(d, d.length, factor);
}

/** For a [rows, cols] gradient, subtract from each row its mean over cols. */
export async function centralize(g: F32, rows: number, cols: number): Promise<void> {
  int('centralize', 'rows', rows);
  int('centralize', 'cols', cols);
  const d = expectData<Float32Array>('centralize g', g, 'f32', g instanceof Float32Array ? [rows * cols] : [rows, cols]);
  await native().centralize(d, rows, cols);
}

/** If norm > maxNorm, g *= maxNorm / (norm + 1e-6). Resolves to the factor applied (1 if none). */
export async function clipByGlobalNorm(g: F32, norm: number, maxNorm: number): Promise<number> {
  finite('clipByGlobalNorm', 'norm', norm);
  finite('clipByGlobalNorm', 'maxNorm', maxNorm);
  if (norm < 0 || maxNorm <= 0) throw new EngineError('ERR_ARG', `clipByGlobalNorm: need norm >= 0 and maxNorm > 0, got ${norm}, ${maxNorm}`);
  const d = flat('clipByGlobalNorm g', g);
  return (await native().clipByGlobalNorm(d, d.length, norm, maxNorm)) as number;
}

export async function zero(g: F32): Promise<void> {
  const d = flat('zero g', g);
  await native().zero(d, d.length);
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** 1-based step number after this update (bias correction). */
  step: number;
}

/** One AdamW update (PyTorch semantics, decoupled decay) on flat buffers of equal length. */
export async function adamwStep(param: F32, m: F32, v: F32, grad: F32, o: AdamWOptions): Promise<void> {
  const p = flat('adamwStep param', param);
  const n = p.length;
  const vec = (what: string, x: F32): Float32Array => {
    const d = flat(what, x);
    if (d.length !== n) throw new EngineError('ERR_SHAPE', `${what}: expected ${n} elements (as param), got ${d.length}`);
    return d;
  };
  finite('adamwStep', 'lr', o.lr);
  if (!Number.isInteger(o.step) || o.step < 1) throw new EngineError('ERR_ARG', `adamwStep: step must be an integer >= 1, got ${o.step}`);
  await native().adamwStep(
    p, vec('adamwStep m', m), vec('adamwStep v', v), vec('adamwStep grad', grad), n,
    o.lr, o.beta1 ?? 0.9, o.beta2 ?? 0.999, o.eps ?? 1e-8, o.weightDecay ?? 0, o.step,
  );
}
