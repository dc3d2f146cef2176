/**
 * Typed wrappers for flash attention with bf16 inputs (REFERENCE §6): q, k, v, out and dout are
 * bf16 bit patterns (Uint16Array, e.g. from toBf16), lse and the gradients fp32. Layouts and
 * document semantics as in attention.ts. Runs on AVX512-BF16 kernels where the CPU has them,
 * else on the fp32 kernels with the inputs widened (attentionBf16Impl says which). Every call is
 * validated here and runs off the main thread; it must never copy its inputs.
 */
import { native } from '../native.js';
import { EngineError } from '../errors.js';
import { expectData, type Tensor } from '../Tensor.js';
import { checkShape, shapeArgs, type AttentionGrads, type AttentionShape } from './attention.js';
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
