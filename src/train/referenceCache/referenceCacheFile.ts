/**
 * Where precomputed reference log-probs are kept and what they are keyed by:
 * `<output_dir>/token_cache/reference_logps/<key>.f64`, beside the token caches. The key is a
 * sha256 over everything that changes the numbers: the stage, the SP degree (shards cut the sums
 * at different places), bf16, the device, the model's config and its weights as the reference
 * scores with them (full fine-tuning: the initial weights; LoRA: the base), and every token,
 * label, position and document length of the scored sequences in order (training, then
 * evaluation sets). The file: 8 bytes magic, the 32-byte key, the value count (u64), then the
 * values (f64, little-endian). Written to a temporary name and renamed, so a reader never sees a
 * partial file. Must never return values for another key or count.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Model } from '../../engine/model/index.js';
import type { ScoredSet } from './scoreReference.js';

const MAGIC = 'ULREFLP1';
const HEADER = 8 + 32 + 8;

export interface ReferenceKeyInput {
  stage: 'dpo' | 'kto';
  sp: number;
  bf16: boolean;
  device: string | null;
  /** the model the reference scores with (its `params` are the reference weights) */
  model: Model;
  sets: readonly ScoredSet<unknown>[];
}

function update(h: ReturnType<typeof createHash>, a: Int32Array | Float32Array | undefined): void {
  const len = new Uint32Array([a ? a.length : 0xffffffff]);
  h.update(new Uint8Array(len.buffer));
  if (a) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

/** The cache key (hex) of a precompute. Reads every scored item once. */
export function referenceKey(k: ReferenceKeyInput): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ format: MAGIC, stage: k.stage, sp: k.sp, bf16: k.bf16, device: k.device, config: k.model.config, sets: k.sets.map((s) => s.items.length) }));
  update(h, k.model.params);
  for (const set of k.sets) {
    for (let i = 0; i < set.items.length; i++) {
      for (const s of set.sequences(set.items.at(i)!)) {
        update(h, s.tokens);
        update(h, s.labels);
        update(h, s.positions);
        update(h, s.docLens);
      }
    }
  }
  return h.digest('hex');
}

export function referenceCachePath(outputDir: string, key: string): string {
  return join(outputDir, 'token_cache', 'reference_logps', `${key.slice(0, 20)}.f64`);
}

/** The cached values of `key` (`count` of them), or null when the file is missing or holds another key or count. */
export function readReferenceCache(path: string, key: string, count: number): Float64Array | null {
  if (!existsSync(path)) return null;
  const b = readFileSync(path);
  if (b.length !== HEADER + 8 * count || b.toString('latin1', 0, 8) !== MAGIC || b.toString('hex', 8, 40) !== key || b.readBigUInt64LE(40) !== BigInt(count)) return null;
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = b.readDoubleLE(HEADER + 8 * i);
  return out;
}

export function writeReferenceCache(path: string, key: string, values: Float64Array): void {
  const b = Buffer.alloc(HEADER + 8 * values.length);
  b.write(MAGIC, 0, 'latin1');
  b.write(key, 8, 'hex');
  b.writeBigUInt64LE(BigInt(values.length), 40);
  for (let i = 0; i < values.length; i++) b.writeDoubleLE(values[i]!, HEADER + 8 * i);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, b);
  renameSync(tmp, path);
}
