/**
 * The input of one forward pass over a packed token sequence, and its validation into the native
 * forward's arguments (coded EngineErrors naming the field). The sum of docLens is checked
 * natively: it depends on the attention backend (n locally; the global length under sequence
 * parallelism). Must never pass the native call a buffer of the wrong type or length.
 */
import { EngineError } from '../errors.js';
import type { NativeModel } from '../nativeBinding.js';
import { expectData, type Tensor } from '../Tensor.js';

export interface ForwardInput {
  /** Token ids [n]. */
  tokens: Int32Array | Tensor;
  /** Targets [n], already shifted (labels[t] is the target of position t); -100 is ignored. */
  labels: Int32Array | Tensor;
  /** Global position ids [n] (default 0..n-1). */
  positions?: Int32Array | Tensor;
  /** Document lengths summing to n (default: one document); a negative length marks padding. */
  docLens?: Int32Array;
  /** Valid tokens in the whole global batch (default: the valid labels of this sequence). */
  normalizer?: number;
  /** Receives -log p(label) per token [n] (0 where ignored). */
  tokenLoss?: Float32Array;
  /** Receives each position's highest-logit token id [n] (ties: the lowest id); for accuracy metrics. */
  tokenArgmax?: Int32Array;
  /**
   * Key of the LoRA dropout masks (uint32): masks are keyed by (LoRA seed, this key, layer,
   * module), so the caller picks one per micro-batch (e.g. from the step and micro-batch index)
   * and a resumed run draws the same masks. Absent: no dropout (evaluation, reference passes).
   */
  dropoutKey?: number;
}

/** The native forward's arguments for `input` (its n tokens first). */
export function forwardArgs(input: ForwardInput): { n: number; args: Parameters<NativeModel['forward']> } {
  const n = input.tokens instanceof Int32Array ? input.tokens.length : input.tokens.numel;
  if (n < 1) throw new EngineError('ERR_SHAPE', 'forward: tokens must hold at least one token');
  const tokens = expectData<Int32Array>('forward tokens', input.tokens, 'i32', [n]);
  const labels = expectData<Int32Array>('forward labels', input.labels, 'i32', [n]);
  const positions = input.positions
    ? expectData<Int32Array>('forward positions', input.positions, 'i32', [n])
    : Int32Array.from({ length: n }, (_, i) => i);
  const docLens = input.docLens ? expectData<Int32Array>('forward docLens', input.docLens, 'i32', [input.docLens.length]) : null;
  let normalizer = input.normalizer;
  if (normalizer === undefined) {
    normalizer = labels.reduce((a, x) => a + (x >= 0 ? 1 : 0), 0);
    if (normalizer === 0) throw new EngineError('ERR_ARG', 'forward: no valid label and no normalizer given');
  }
  if (!Number.isFinite(normalizer) || normalizer <= 0) throw new EngineError('ERR_ARG', `forward: normalizer must be a finite number > 0, got ${normalizer}`);
  const tokenLoss = input.tokenLoss ? expectData<Float32Array>('forward tokenLoss', input.tokenLoss, 'f32', [n]) : null;
  const key = input.dropoutKey ?? null;
  if (key !== null && (!Number.isInteger(key) || key < 0 || key > 0xffffffff)) throw new EngineError('ERR_ARG', `forward: dropoutKey must be an integer in [0, 2^32), got ${key}`);
  const argmax = input.tokenArgmax ? expectData<Int32Array>('forward tokenArgmax', input.tokenArgmax, 'i32', [n]) : null;
  return { n, args: [tokens, labels, positions, docLens, normalizer, tokenLoss, key, argmax] };
}
