/**
 * Typed wrappers for flash attention (REFERENCE §3) and the fused chunked LM head + cross-entropy
 * (REFERENCE §4). Layouts: q / out [s, H, d], k / v [s, Hkv, d], lse [H, s]; h [n, dim],
 * W [vocab, dim]. Every call validates its arguments here (coded errors) and runs the kernel off
 * the main thread; it must never block the event loop or copy its inputs.
 *
 * Documents: `docLens` lists the packed documents' lengths (summing to s); a NEGATIVE length -n
 * marks n padding tokens that attend to nothing and are attended by nothing (their rows give
 * output 0, lse -Infinity and zero gradients).
 */
import { native } from '../native.js';
import type { AttentionShapeArgs } from '../nativeBinding.js';
import { expectData, type Tensor } from '../Tensor.js';
import { EngineError } from '../errors.js';

type F32 = Tensor | Float32Array;

export interface AttentionShape {
  s: number;
  H: number;
  Hkv: number;
  d: number;
  /** Default true. */
  causal?: boolean;
  /** Softmax scale; default 1/sqrt(d). */
  scale?: number;
  /** Packed document lengths (negative = padding); default one document of length s. */
  docLens?: Int32Array;
  /**
   * Sliding window W (causal only): query i sees keys j with i - W < j <= i (HF's Mistral / Qwen2
   * mask); default none.
   */
  window?: number;
}

/** Shape checks shared by the fp32 and bf16 wrappers (coded errors naming the field). */
export function checkShape(what: string, sh: AttentionShape): void {
  for (const [k, v] of Object.entries({ s: sh.s, H: sh.H, Hkv: sh.Hkv, d: sh.d })) {
    const min = k === 's' ? 0 : 1;
    if (!Number.isInteger(v) || v < min) throw new EngineError('ERR_ARG', `${what}: ${k} must be an integer >= ${min}, got ${v}`);
  }
  if (sh.H % sh.Hkv !== 0) throw new EngineError('ERR_SHAPE', `${what}: H (${sh.H}) must be a multiple of Hkv (${sh.Hkv})`);
  if (sh.scale !== undefined && !(Number.isFinite(sh.scale) && sh.scale > 0)) {
    throw new EngineError('ERR_ARG', `${what}: scale must be a finite number > 0, got ${sh.scale}`);
  }
  if (sh.window !== undefined) {
    if (!Number.isInteger(sh.window) || sh.window < 0) throw new EngineError('ERR_ARG', `${what}: window must be an integer >= 0, got ${sh.window}`);
    if (sh.window > 0 && sh.causal === false) throw new EngineError('ERR_ARG', `${what}: a sliding window needs causal attention`);
  }
  if (sh.docLens !== undefined) {
    if (!(sh.docLens instanceof Int32Array)) throw new EngineError('ERR_DTYPE', `${what}: docLens must be an Int32Array`);
    let total = 0;
    for (const n of sh.docLens) total += Math.abs(n);
    if (total !== sh.s) throw new EngineError('ERR_SHAPE', `${what}: docLens must cover s = ${sh.s} tokens, they cover ${total}`);
  }
}

export function shapeArgs(sh: AttentionShape): AttentionShapeArgs {
  return [sh.docLens ?? null, sh.s, sh.H, sh.Hkv, sh.d, sh.causal ?? true, sh.scale ?? 0, sh.window ?? 0];
}

/** out [s, H, d] and lse [H, s] are overwritten. */
export async function flashAttentionForward(out: F32, lse: F32, q: F32, k: F32, v: F32, sh: AttentionShape): Promise<void> {
  checkShape('flashAttentionForward', sh);
  const o = expectData<Float32Array>('flashAttentionForward out', out, 'f32', [sh.s, sh.H, sh.d]);
  const l = expectData<Float32Array>('flashAttentionForward lse', lse, 'f32', [sh.H, sh.s]);
  const qd = expectData<Float32Array>('flashAttentionForward q', q, 'f32', [sh.s, sh.H, sh.d]);
  const kd = expectData<Float32Array>('flashAttentionForward k', k, 'f32', [sh.s, sh.Hkv, sh.d]);
  const vd = expectData<Float32Array>('flashAttentionForward v', v, 'f32', [sh.s, sh.Hkv, sh.d]);
  await native().flashAttentionForward(o, l, qd, kd, vd, ...shapeArgs(sh));
}

export interface AttentionGrads {
  dq: F32;
  dk: F32;
  dv: F32;
}

/** Accumulates (+=) into g.dq, g.dk, g.dv; `out` and `lse` are the forward's results. */
export async function flashAttentionBackward(
  g: AttentionGrads,
  dout: F32,
  q: F32,
  k: F32,
  v: F32,
  out: F32,
  lse: F32,
  sh: AttentionShape,
): Promise<void> {
  checkShape('flashAttentionBackward', sh);
  const qs = [sh.s, sh.H, sh.d], ks = [sh.s, sh.Hkv, sh.d];
  const w = 'flashAttentionBackward';
  await native().flashAttentionBackward(
    expectData<Float32Array>(`${w} dq`, g.dq, 'f32', qs),
    expectData<Float32Array>(`${w} dk`, g.dk, 'f32', ks),
    expectData<Float32Array>(`${w} dv`, g.dv, 'f32', ks),
    expectData<Float32Array>(`${w} dout`, dout, 'f32', qs),
    expectData<Float32Array>(`${w} q`, q, 'f32', qs),
    expectData<Float32Array>(`${w} k`, k, 'f32', ks),
    expectData<Float32Array>(`${w} v`, v, 'f32', ks),
    expectData<Float32Array>(`${w} out`, out, 'f32', qs),
    expectData<Float32Array>(`${w} lse`, lse, 'f32', [sh.H, sh.s]),
    ...shapeArgs(sh),
  );
}

/** Naive O(s^2) attention computed in fp64 (tests and benchmarks only). */
export async function attentionReference(out: F32, q: F32, k: F32, v: F32, sh: AttentionShape): Promise<void> {
  checkShape('attentionReference', sh);
  const w = 'attentionReference';
  await native().attentionReference(
    expectData<Float32Array>(`${w} out`, out, 'f32', [sh.s, sh.H, sh.d]),
    expectData<Float32Array>(`${w} q`, q, 'f32', [sh.s, sh.H, sh.d]),
    expectData<Float32Array>(`${w} k`, k, 'f32', [sh.s, sh.Hkv, sh.d]),
    expectData<Float32Array>(`${w} v`, v, 'f32', [sh.s, sh.Hkv, sh.d]),
    ...shapeArgs(sh),
  );
}

/** High-water mark (bytes) of the flash kernels' own scratch since the last reset (inputs/outputs excluded). */
export function attentionScratchPeakBytes(): number {
  return native().attentionScratchPeak();
}

export function resetAttentionScratchPeak(): void {
  native().attentionResetScratchPeak();
}

export interface LmHeadShape {
  n: number;
  dim: number;
  vocab: number;
  /** Tokens per logits chunk; default 256. */
  chunk?: number;
}

/** LM head argument checks shared with the bf16 wrappers. */
export function checkLm(what: string, sh: LmHeadShape, labels: Int32Array | Tensor): Int32Array {
  for (const [k, v] of Object.entries({ n: sh.n, dim: sh.dim, vocab: sh.vocab, chunk: sh.chunk ?? 256 })) {
    const min = k === 'n' ? 0 : 1;
    if (!Number.isInteger(v) || v < min) throw new EngineError('ERR_ARG', `${what}: ${k} must be an integer >= ${min}, got ${v}`);
  }
  const y = expectData<Int32Array>(`${what} labels`, labels, 'i32', [sh.n]);
  for (let t = 0; t < y.length; t++) {
    if (y[t]! >= sh.vocab) throw new EngineError('ERR_ARG', `${what}: label ${y[t]} at token ${t} is >= vocab ${sh.vocab}`);
  }
  return y;
}

export function checkNormalizer(what: string, normalizer: number): void {
  if (!(Number.isFinite(normalizer) && normalizer > 0)) {
    throw new EngineError('ERR_ARG', `${what}: normalizer must be a finite number > 0 (global count of valid tokens), got ${normalizer}`);
  }
}

export interface LmHeadCeOutputs {
  /** [n]: -log p(label) per token (0 for ignored tokens). */
  tokenLoss?: F32;
  /** [n]: log-sum-exp of each row's logits, for the backward. */
  lse?: F32;
  /** [n]: each row's highest-logit id (the lowest id among equal maxima). */
  argmax?: Int32Array;
}

/** loss = sum over valid tokens of -log p(label) / normalizer; labels < 0 are ignored. */
export async function lmHeadCeForward(
  h: F32,
  W: F32,
  labels: Int32Array | Tensor,
  normalizer: number,
  sh: LmHeadShape,
  o: LmHeadCeOutputs = {},
): Promise<{ loss: number; valid: number }> {
  const w = 'lmHeadCeForward';
  const y = checkLm(w, sh, labels);
  checkNormalizer(w, normalizer);
  const tl = o.tokenLoss ? expectData<Float32Array>(`${w} tokenLoss`, o.tokenLoss, 'f32', [sh.n]) : null;
  const lse = o.lse ? expectData<Float32Array>(`${w} lse`, o.lse, 'f32', [sh.n]) : null;
  const argmax = o.argmax ? expectData<Int32Array>(`${w} argmax`, o.argmax, 'i32', [sh.n]) : null;
  return native().lmHeadCeForward(
    tl,
    lse,
    expectData<Float32Array>(`${w} h`, h, 'f32', [sh.n, sh.dim]),
    expectData<Float32Array>(`${w} W`, W, 'f32', [sh.vocab, sh.dim]),
    y,
    sh.n,
    sh.dim,
    sh.vocab,
    normalizer,
    sh.chunk ?? 256,
    argmax,
  );
}

export interface LmHeadCeGrads {
  /** [n, dim], accumulated (+=). */
  dh?: F32;
  /** [vocab, dim], accumulated (+=). */
  dW?: F32;
}

export interface LmHeadCeBackwardOptions {
  /** [n] from the forward; recomputed when absent. */
  lse?: F32;
  /** [n] per-token weights replacing 1/normalizer (ignored tokens still get 0). */
  tokenWeight?: F32;
}

/** Gradient of sum_t weight_t * tokenLoss_t (weight_t = 1/normalizer, or tokenWeight[t]). */
export async function lmHeadCeBackward(
  g: LmHeadCeGrads,
  h: F32,
  W: F32,
  labels: Int32Array | Tensor,
  normalizer: number,
  sh: LmHeadShape,
  o: LmHeadCeBackwardOptions = {},
): Promise<void> {
  const w = 'lmHeadCeBackward';
  const y = checkLm(w, sh, labels);
  if (!o.tokenWeight) checkNormalizer(w, normalizer);
  await native().lmHeadCeBackward(
    g.dh ? expectData<Float32Array>(`${w} dh`, g.dh, 'f32', [sh.n, sh.dim]) : null,
    g.dW ? expectData<Float32Array>(`${w} dW`, g.dW, 'f32', [sh.vocab, sh.dim]) : null,
    expectData<Float32Array>(`${w} h`, h, 'f32', [sh.n, sh.dim]),
    expectData<Float32Array>(`${w} W`, W, 'f32', [sh.vocab, sh.dim]),
    y,
    o.lse ? expectData<Float32Array>(`${w} lse`, o.lse, 'f32', [sh.n]) : null,
    o.tokenWeight ? expectData<Float32Array>(`${w} tokenWeight`, o.tokenWeight, 'f32', [sh.n]) : null,
    sh.n,
    sh.dim,
    sh.vocab,
    o.tokenWeight ? 1 : normalizer,
    sh.chunk ?? 256,
  );
}
