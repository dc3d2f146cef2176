/**
 * bf16 tensors at the engine's boundary: Uint16Array bit patterns (the top half of an fp32),
 * checked once where they enter a native call. Must never accept another array type in their place.
 */
import { EngineError } from '../errors.js';

/** `v` as bf16 bit patterns; with `shape`, also its element count (ERR_DTYPE / ERR_SHAPE otherwise). */
export function expectBf16(what: string, v: unknown, shape?: readonly number[]): Uint16Array {
  if (!(v instanceof Uint16Array)) {
    const got = (v as object)?.constructor?.name ?? typeof v;
    throw new EngineError('ERR_DTYPE', `${what}: expected a Uint16Array of bf16 bit patterns, got ${got}`);
  }
  if (shape) {
    const want = shape.reduce((a, b) => a * b, 1);
    if (v.length !== want) throw new EngineError('ERR_SHAPE', `${what}: expected ${want} elements (shape [${shape.join(', ')}]), got ${v.length}`);
  }
  return v;
}
