/**
 * fp32 -> IEEE half conversion (exported checkpoints in float16): round to nearest even, overflow
 * to +-Inf, subnormals kept, NaN a quiet NaN; off the main thread (native/src/kernels/f16.h).
 * Loading halves back is safetensors.ts's job (convertToF32).
 */
import { native } from '../native.js';
import { EngineError } from '../errors.js';

/** Half bit patterns of `x` (into `out` when given; same length). */
export async function toF16(x: Float32Array, out: Uint16Array = new Uint16Array(x.length)): Promise<Uint16Array> {
  if (!(x instanceof Float32Array)) throw new EngineError('ERR_DTYPE', 'toF16: expected a Float32Array');
  if (out.length !== x.length) throw new EngineError('ERR_SHAPE', `toF16: out has ${out.length} elements, input ${x.length}`);
  await native().f32ToF16(out, x);
  return out;
}
