/**
 * The key of a token cache and its digest: every input that changes the tokens, labels or
 * boundaries a job trains on. Dataset files are identified by absolute path, size and mtime (a
 * changed file gets a new cache without hashing gigabytes); tokenizer files by their content
 * (small, and often copied between machines). Reads file metadata and the tokenizer files; must
 * never read a dataset's content.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DatasetSpec } from '../datasetInfo.js';
import { DataError } from '../DataError.js';
import type { PackOptions } from '../sequences.js';
import { FEEDBACK_BATCH_ROWS } from '../feedback.js';
import { CACHE_VERSION, type CacheKey } from './cacheLayout.js';

export interface CacheKeyInput {
  stage: CacheKey['stage'];
  template: string;
  /** the template and masking options (default_system, enable_thinking, train_on_prompt, mask_history) */
  templateOptions?: object;
  specs: readonly DatasetSpec[];
  pack: PackOptions;
  maxSamples: number | null;
  /** kto: rows per preprocessing batch */
  feedbackBatchRows?: number;
  /** the model directory whose tokenizer files are used (null: the byte tokenizer) */
  modelDir: string | null;
  vocabSize: number;
}

/** The files loadTokenizer reads when a model directory has a tokenizer.json. */
const HF_TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'config.json'];

function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function cacheKeyOf(o: CacheKeyInput): CacheKey {
  const datasets = o.specs.map((spec) => {
    const file = resolve(spec.file);
    let st;
    try {
      st = statSync(file);
    } catch (err) {
      throw new DataError(`cannot read: ${(err as Error).message}`, { file }, { cause: err });
    }
    return { name: spec.name, formatting: spec.formatting, ranking: spec.ranking, columns: { ...spec.columns }, tags: spec.tags ? { ...spec.tags } : null, file, size: st.size, mtimeMs: st.mtimeMs };
  });
  const hf = o.modelDir !== null && existsSync(join(o.modelDir, 'tokenizer.json'));
  const files = hf ? HF_TOKENIZER_FILES.filter((f) => existsSync(join(o.modelDir!, f))).map((name) => ({ name, sha256: sha256(readFileSync(join(o.modelDir!, name))) })) : [];
  return {
    version: CACHE_VERSION,
    stage: o.stage,
    template: o.template,
    // options left undefined are dropped, so a key is the same however the options object was built
    templateOptions: Object.fromEntries(Object.entries((o.templateOptions ?? {}) as Record<string, unknown>).filter(([, v]) => v !== undefined)),
    cutoffLen: o.pack.cutoffLen,
    packing: o.pack.packing,
    maxSamples: o.maxSamples,
    // only kto's key has it: the other stages' keys (and their caches) stay as they were
    ...(o.stage === 'kto' ? { feedbackBatchRows: o.feedbackBatchRows ?? FEEDBACK_BATCH_ROWS } : {}),
    datasets,
    tokenizer: { kind: hf ? 'hf' : 'byte', vocabSize: o.vocabSize, files },
  };
}

/** JSON with object keys sorted, so equal keys hash equally whatever their construction order. */
export function canonicalJson(v: unknown): string {
  const canon = (x: unknown): unknown =>
    x !== null && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, y]) => [k, canon(y)]))
      : Array.isArray(x)
        ? x.map(canon)
        : x;
  return JSON.stringify(canon(v));
}

export function cacheDigest(key: CacheKey | Record<string, unknown>): string {
  return sha256(canonicalJson(key));
}

/** The top-level key fields whose values differ (for the warning when a saved cache is reused as is). */
export function keyDifferences(a: CacheKey | Record<string, unknown>, b: CacheKey | Record<string, unknown>): string[] {
  const ma = new Map<string, unknown>(Object.entries(a));
  const mb = new Map<string, unknown>(Object.entries(b));
  const names = new Set([...ma.keys(), ...mb.keys()]);
  return [...names].filter((k) => canonicalJson(ma.get(k)) !== canonicalJson(mb.get(k))).sort();
}
