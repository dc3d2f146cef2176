/** The digest a run reports for its weights: sha256 over the trainable parameters, views in order. */
import { createHash } from 'node:crypto';
import type { Model } from '../../engine/model/index.js';

/** sha256 over the trainable parameters (views in order, raw f32 bytes): the adapters with LoRA. */
export function weightsHash(model: Model): string {
  const h = createHash('sha256');
  const { params, views } = model.trainable;
  for (const v of views) {
    const d = params.subarray(v.offset, v.offset + v.numel);
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex');
}
