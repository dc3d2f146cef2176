/**
 * Typed wrappers for the bf16 kernels of the model (REFERENCE §6), with bf16 tensors as
 * Uint16Array bit patterns (e.g. from toBf16):
 *  - flash attention: q, k, v, out and dout bf16, lse and the gradients fp32; layouts and document
 *    semantics as in attention.ts. AVX512-BF16 kernels where the CPU has them, else the fp32
 *    kernels with the inputs widened (attentionBf16Impl says which);
 *  - the fused LM head + cross-entropy: h and W bf16, the products bf16 x bf16 -> fp32, softmax,
 *    loss and gradients fp32 (the backward rounds the logits gradient to bf16 for its products).
 * Every call is validated here and runs off the main thread; it must never copy its inputs.
 */
import { native } from '../native.js';
import { EngineError } from '../errors.js';
import { expectData, type Tensor } from '../Tensor.js';
import { checkLm, checkNormalizer, checkShape, shapeArgs, type AttentionGrads, type AttentionShape, type LmHeadCeBackwardOptions, type LmHeadCeGrads, type LmHeadCeOutputs, type LmHeadShape } from './attention.js';
import { expectBf16 } from './bf16Data.js';

type F32 = Tensor | Float32Array;

function checkEven(what: string, sh: AttentionShape): void {
  checkShape(what, sh);
  if (sh.d % 2 !== 0) throw new EngineError('ERR_SHAPE', `${what}: bf16 attention needs an even head dim d, got ${sh.d}`);
}

/** out [s, H, d] (bf16) and lse [H, s] (fp32) are overwritten. */
export async function flashAttentionForwardBf16(out: Uint16Array, lse: F32, q: Uint16Array, k: Uint16Array, v: Uint16Array, sh: AttentionShape): Promise<void> {
  const w = 'flashAttentionForwardBf16';
  checkEven(w, sh);
  const qs = [sh.s, sh.H, sh.d], ks = [sh.s, sh.Hkv, sh.d];
  await native().flashAttentionForwardBf16(
    expectBf16(`${w} out`, out, qs),
    expectData<Float32Array>(`${w} lse`, lse, 'f32', [sh.H, sh.s]),
    expectBf16(`${w} q`, q, qs),
    expectBf16(`${w} k`, k, ks),
    expectBf16(`${w} v`, v, ks),
    ...shapeArgs(sh),
  );
}

/** Accumulates (+=) into the fp32 g.dq, g.dk, g.dv; `out` (bf16) and `lse` are the forward's results. */
export async function flashAttentionBackwardBf16(
  g: AttentionGrads,
  dout: Uint16Array,
  q: Uint16Array,
  k: Uint16Array,
  v: Uint16Array,
  out: Uint16Array,
  lse: F32,
  sh: AttentionShape,
): Promise<void> {
  const w = 'flashAttentionBackwardBf16';
  checkEven(w, sh);
  const qs = [sh.s, sh.H, sh.d], ks = [sh.s, sh.Hkv, sh.d];
  await native().flashAttentionBackwardBf16(
    expectData<Float32Array>(`${w} dq`, g.dq, 'f32', qs),
    expectData<Float32Array>(`${w} dk`, g.dk, 'f32', ks),
    expectData<Float32Array>(`${w} dv`, g.dv, 'f32', ks),
    expectBf16(`${w} dout`, dout, qs),
    expectBf16(`${w} q`, q, qs),
    expectBf16(`${w} k`, k, ks),
    expectBf16(`${w} v`, v, ks),
    expectBf16(`${w} out`, out, qs),
    expectData<Float32Array>(`${w} lse`, lse, 'f32', [sh.H, sh.s]),
    ...shapeArgs(sh),
  );
}

/** 'avx512bf16' (vdpbf16ps micro-kernels) or 'fp32-fallback' (inputs widened, fp32 kernels). */
export function attentionBf16Impl(): string {
  return native().attentionBf16Impl();
}

/** lmHeadCeForward with bf16 h [n, dim] and W [vocab, dim]. */
export async function lmHeadCeForwardBf16(
  h: Uint16Array,
  W: Uint16Array,
  labels: Int32Array | Tensor,
  normalizer: number,
  sh: LmHeadShape,
  o: LmHeadCeOutputs = {},
): Promise<{ loss: number; valid: number }> {
  const w = 'lmHeadCeForwardBf16';
  const y = checkLm(w, sh, labels);
  checkNormalizer(w, normalizer);
  return native().lmHeadCeForwardBf16(
    o.tokenLoss ? expectData<Float32Array>(`${w} tokenLoss`, o.tokenLoss, 'f32', [sh.n]) : null,
    o.lse ? expectData<Float32Array>(`${w} lse`, o.lse, 'f32', [sh.n]) : null,
    expectBf16(`${w} h`, h, [sh.n, sh.dim]),
    expectBf16(`${w} W`, W, [sh.vocab, sh.dim]),
    y, sh.n, sh.dim, sh.vocab, normalizer, sh.chunk ?? 256,
    o.argmax ? expectData<Int32Array>(`${w} argmax`, o.argmax, 'i32', [sh.n]) : null,
  );
}

/** lmHeadCeBackward with bf16 h and W; g.dh and g.dW are fp32 and accumulated (+=). */
export async function lmHeadCeBackwardBf16(
  g: LmHeadCeGrads,
  h: Uint16Array,
  W: Uint16Array,
  labels: Int32Array | Tensor,
  normalizer: number,
  sh: LmHeadShape,
  o: LmHeadCeBackwardOptions = {},
): Promise<void> {
  const w = 'lmHeadCeBackwardBf16';
  const y = checkLm(w, sh, labels);
  if (!o.tokenWeight) checkNormalizer(w, normalizer);
  await native().lmHeadCeBackwardBf16(
    g.dh ? expectData<Float32Array>(`${w} dh`, g.dh, 'f32', [sh.n, sh.dim]) : null,
    g.dW ? expectData<Float32Array>(`${w} dW`, g.dW, 'f32', [sh.vocab, sh.dim]) : null,
    expectBf16(`${w} h`, h, [sh.n, sh.dim]),
    expectBf16(`${w} W`, W, [sh.vocab, sh.dim]),
    y,
    o.lse ? expectData<Float32Array>(`${w} lse`, o.lse, 'f32', [sh.n]) : null,
    o.tokenWeight ? expectData<Float32Array>(`${w} tokenWeight`, o.tokenWeight, 'f32', [sh.n]) : null,
    sh.n, sh.dim, sh.vocab, o.tokenWeight ? 1 : normalizer, sh.chunk ?? 256,
  );
}
