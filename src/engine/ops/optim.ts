/**
 * Typed wrappers for AdamW and the gradient-policy kernels (REFERENCE §5): statistics over a flat
 * gradient split into tensors, seeded counter-based noise, scale, centralize, clip, zero, and the
 * fused optimizer step that runs a plan's operations and AdamW over every tensor in one native
 * call (bitwise what the per-tensor calls give). Results are bitwise identical for any thread
 * count and on every process, so replicas that run the same calls make the same decisions.
 * Never draw noise from Math.random or any unkeyed source.
 */
import { native } from '../native.js';
import { SPAN_CENTRALIZE, SPAN_COLUMNS, SPAN_DECAY, type GradStats, type NativeGradPlan, type PlanEffects } from '../nativeBinding.js';
import { expectData, Tensor } from '../Tensor.js';
import { EngineError } from '../errors.js';

export type { GradStats, PlanEffects };

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

export async function gradStats(grad: F32, spans: readonly GradSpan[]): Promise<GradStats> {
  const g = flat('gradStats grad', grad);
  return native().gradStats(g, encodeSpans('gradStats', g, spans));
}

/** One span's partial sums of the statistics (finite values only), to be combined across ranks. */
export interface PartialSums {
  sumAbs: number;
  sumSq: number;
  maxAbs: number;
  nonfinite: number;
}

function encodeSpans(op: string, g: Float32Array, spans: readonly GradSpan[]): Float64Array {
  const s = new Float64Array(spans.length * 2);
  spans.forEach((sp, i) => {
    int(op, `spans[${i}].offset`, sp.offset);
    int(op, `spans[${i}].numel`, sp.numel);
    if (sp.offset + sp.numel > g.length) {
      throw new EngineError('ERR_SHAPE', `${op}: spans[${i}] [${sp.offset}, ${sp.offset + sp.numel}) is outside the gradient of ${g.length} elements`);
    }
    s[2 * i] = sp.offset;
    s[2 * i + 1] = sp.numel;
  });
  return s;
}

/** Each span's partial sums, in the fixed block order of gradStats (bitwise the same on every process). */
export async function gradPartialSums(grad: F32, spans: readonly GradSpan[]): Promise<PartialSums[]> {
  const g = flat('gradPartialSums grad', grad);
  const raw = await native().gradPartialSums(g, encodeSpans('gradPartialSums', g, spans));
  return spans.map((_, i) => ({ sumAbs: raw[4 * i]!, sumSq: raw[4 * i + 1]!, maxAbs: raw[4 * i + 2]!, nonfinite: raw[4 * i + 3]! }));
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

/**
 * g[i] += std * philoxNormal(key, first + i): `first` > 0 when g is a part of the tensor that
 * starts at its element `first` (ZeRO's partitioned gradients), so the part gets the values the
 * whole tensor would.
 */
export async function addNoise(g: F32, std: number, key: NoiseKey, first = 0): Promise<void> {
  checkKey('addNoise', key);
  finite('addNoise', 'std', std);
  int('addNoise', 'first', first);
  const d = flat('addNoise g', g);
  await native().addNoise(d, d.length, std, key.seed, key.step, key.tensor, first);
}

/** The i-th standard normal of the stream `key` (synchronous: a few nanoseconds). */
export function philoxNormal(key: NoiseKey, i: number): number {
  checkKey('philoxNormal', key);
  int('philoxNormal', 'i', i);
  return native().philoxNormal(key.seed, key.step, key.tensor, i);
}

/** The raw Philox4x32-10 block function (for known-answer tests). */
export function philox4x32(ctr: readonly [number, number, number, number], key: readonly [number, number]): number[] {
  [...ctr, ...key].forEach((v, i) => int('philox4x32', `word ${i}`, v, U32));
  return native().philox4x32(...ctr, ...key);
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
  return native().clipByGlobalNorm(d, d.length, norm, maxNorm);
}

export async function zero(g: F32): Promise<void> {
  const d = flat('zero g', g);
  await native().zero(d, d.length);
}

function checkAdamW(op: string, o: AdamWOptions): void {
  finite(op, 'lr', o.lr);
  if (!Number.isInteger(o.step) || o.step < 1) throw new EngineError('ERR_ARG', `${op}: step must be an integer >= 1, got ${o.step}`);
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
  checkAdamW('adamwStep', o);
  await native().adamwStep(
    p, vec('adamwStep m', m), vec('adamwStep v', v), vec('adamwStep grad', grad), n,
    o.lr, o.beta1 ?? 0.9, o.beta2 ?? 0.999, o.eps ?? 1e-8, o.weightDecay ?? 0, o.step,
  );
}

/** One trainable tensor of the fused optimizer step. */
export interface StepSpan extends GradSpan {
  /** [rows, cols] when its gradient is centralized (rows * cols = numel), else null */
  centralize: readonly [number, number] | null;
  /** whether AdamW's weight decay applies */
  decay: boolean;
  /** the tensor index that keys its noise stream (< 2^32) */
  noiseTensor: number;
}

/** Spans validated and encoded once for the native call (reused step after step). */
export class SpanTable {
  readonly data: Float64Array;
  readonly length: number;

  constructor(spans: readonly StepSpan[]) {
    this.length = spans.length;
    this.data = new Float64Array(spans.length * SPAN_COLUMNS);
    spans.forEach((sp, i) => {
      const at = `SpanTable: spans[${i}]`;
      int(at, 'offset', sp.offset);
      int(at, 'numel', sp.numel);
      int(at, 'noiseTensor', sp.noiseTensor, U32);
      const [rows, cols] = sp.centralize ?? [0, 0];
      if (sp.centralize) {
        int(at, 'rows', rows);
        int(at, 'cols', cols);
        if (rows * cols !== sp.numel) throw new EngineError('ERR_SHAPE', `${at}: centralization shape [${rows}, ${cols}] does not hold its ${sp.numel} elements`);
      }
      const flags = (sp.centralize ? SPAN_CENTRALIZE : 0) | (sp.decay ? SPAN_DECAY : 0);
      this.data.set([sp.offset, sp.numel, rows, cols, flags, sp.noiseTensor], i * SPAN_COLUMNS);
    });
  }
}

/** The gradient operations of one step and the reduced statistics they are judged on. */
export interface StepPlan extends Omit<NativeGradPlan, 'l2Norm'> {
  /** the reduced statistics of the gradients the plan was made from */
  stats: Pick<GradStats, 'l2Norm' | 'perTensorMeanAbs'>;
}

/** What the fused step updates after the plan: parameters and AdamW moments, flat like the gradient. */
export interface StepUpdate extends AdamWOptions {
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/**
 * One optimizer step in one native call: the plan's operations in their fixed order (noise,
 * scaling, centralization, clip by the global norm recomputed after them) on `grad`, then, with
 * `update`, AdamW on every span (weight decay where span.decay). Bitwise equal to addNoise /
 * scale / centralize / gradStats / clipByGlobalNorm / adamwStep called span by span.
 */
export async function optimizerStep(grad: Float32Array, spans: SpanTable, plan: StepPlan, update: StepUpdate | null = null): Promise<PlanEffects> {
  const g = flat('optimizerStep grad', grad);
  const same = (what: string, x: Float32Array): Float32Array => {
    const d = flat(`optimizerStep ${what}`, x);
    if (d.length !== g.length) throw new EngineError('ERR_SHAPE', `optimizerStep ${what}: expected ${g.length} elements (as grad), got ${d.length}`);
    return d;
  };
  if (!(spans instanceof SpanTable)) throw new EngineError('ERR_ARG', 'optimizerStep: spans must be a SpanTable');
  const meanAbs = plan.stats.perTensorMeanAbs;
  if (!(meanAbs instanceof Float64Array) || meanAbs.length !== spans.length) {
    throw new EngineError('ERR_SHAPE', `optimizerStep: stats.perTensorMeanAbs must be a Float64Array of ${spans.length} values (one per span)`);
  }
  const { stats, ...ops } = plan;
  const nativePlan: NativeGradPlan = { ...ops, l2Norm: stats.l2Norm };
  if (!update) return native().optimizerStep(g, spans.data, nativePlan, meanAbs, null, null, null, null);
  checkAdamW('optimizerStep', update);
  const adam = { lr: update.lr, beta1: update.beta1 ?? 0.9, beta2: update.beta2 ?? 0.999, eps: update.eps ?? 1e-8, weightDecay: update.weightDecay ?? 0, step: update.step };
  return native().optimizerStep(g, spans.data, nativePlan, meanAbs, same('params', update.params), same('m', update.m), same('v', update.v), adam);
}
