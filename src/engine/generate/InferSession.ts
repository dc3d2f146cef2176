/**
 * A generation session over a Model's weights: the tokens seen so far and their keys and values
 * per layer, cached natively (native/src/model/llama_infer.h). `append` runs new tokens at the
 * next positions and resolves to their logits; the cache always equals what a full forward over
 * `tokens()` computes (dynamic rope and adapter switches are recomputed natively). Calls share
 * the model's busy flag: a session call never overlaps a forward or backward of the same model.
 * Must never be used across an in-place weight update without `truncate(0)` (the cached keys
 * and values would belong to the old weights).
 */
import type { Model } from '../model/index.js';
import { EngineError } from '../errors.js';
import { native } from '../native.js';
import type { NativeInferSession } from '../nativeBinding.js';

export class InferSession {
  readonly vocabSize: number;
  private handle: NativeInferSession | undefined;

  constructor(model: Model) {
    this.vocabSize = model.config.vocabSize;
    this.handle = new (native().InferSession)(model.nativeModel);
  }

  private get h(): NativeInferSession {
    if (!this.handle) throw new EngineError('ERR_STATE', 'inference session is closed');
    return this.handle;
  }

  /** Cached tokens (positions 0 .. length - 1). */
  get length(): number {
    return this.h.length();
  }

  /** A copy of the cached tokens. */
  tokens(): Int32Array {
    return this.h.tokens();
  }

  /** Keeps the first `length` tokens; the next append continues at that position. */
  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.length) {
      throw new EngineError('ERR_ARG', `truncate: length must be an integer in [0, ${this.length}], got ${length}`);
    }
    this.h.truncate(length);
  }

  /**
   * Runs `tokens` (at least one) and caches them. Resolves to the logits of the last token
   * ([vocab]), or of every new token ([n * vocab], row-major) with `allLogits`.
   */
  async append(tokens: Int32Array | readonly number[], o: { allLogits?: boolean; logits?: Float32Array } = {}): Promise<Float32Array> {
    const ids = tokens instanceof Int32Array ? tokens : Int32Array.from(tokens);
    if (ids.length < 1) throw new EngineError('ERR_SHAPE', 'append: at least one token is needed');
    const all = o.allLogits ?? false;
    const want = all ? ids.length * this.vocabSize : this.vocabSize;
    const logits = o.logits ?? new Float32Array(want);
    if (logits.length !== want) throw new EngineError('ERR_SHAPE', `append: logits must hold ${want} floats, got ${logits.length}`);
    await this.h.append(ids, logits, all);
    return logits;
  }

  /** Bytes held by the cache and its scratch buffers. */
  get cacheBytes(): number {
    return this.h.cacheBytes();
  }

  /** Drops the native session (its memory goes with the garbage collector). Safe to call twice. */
  close(): void {
    this.handle = undefined;
  }
}
