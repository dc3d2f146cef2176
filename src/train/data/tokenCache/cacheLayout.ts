/**
 * The on-disk layout of a token cache: one directory holding `meta.json` and flat little-endian
 * arrays, written once by one process and then mapped read-only by every rank.
 *
 *   tokens.bin        token ids of every stored document, one after another (u8, u16 or i32:
 *                     the narrowest type that holds vocab_size ids)
 *   mask.bin          u8 per token, the token's own unshifted label: 0 ignored (-100), 1 the
 *                     token itself, 2 another id listed in explicit_*.bin (pre-tokenized rows)
 *   explicit_pos.bin  f64 stream positions of the mask-2 tokens, ascending
 *   explicit_val.bin  i32 their labels
 *   docs.bin          f64 document start offsets in the stream, then the stream length (docs + 1)
 *   items.bin         sequences (pt/sft): f64 sequence start offsets, then the stream length
 *                     (items + 1); a sequence is a token range, its documents the pieces of the
 *                     documents it cuts (Packer.ts)
 *   prompts.bin       pairs (dpo) and feedback (kto): i32 prompt length of each document; pair i
 *                     is documents 2i (chosen) and 2i + 1 (rejected); KTO example i is documents
 *                     2i (its prompt and answer) and 2i + 1 (its KL sequence: another answer)
 *   tags.bin          feedback (kto): u8 per example, 1 desirable, 0 undesirable
 *   meta.json         what built it (the key and its digest), the counts and the stats; written
 *                     last, so a directory without it is not a cache
 *
 * Offsets are f64 (exact to 2^53 tokens). This file holds types, names and the meta parser only;
 * it must never read or write files.
 */
import type { DatasetSpec } from '../datasetInfo.js';
import { DataError } from '../DataError.js';
import type { DataStats } from '../prepareData.js';
import type { PackOptions } from '../sequences.js';

export const CACHE_FORMAT = 'ulysses-actors token cache';
/** Bump when the layout or what the pipeline computes from the same inputs changes. */
export const CACHE_VERSION = 1;

export const CACHE_FILES = {
  meta: 'meta.json',
  tokens: 'tokens.bin',
  mask: 'mask.bin',
  explicitPos: 'explicit_pos.bin',
  explicitVal: 'explicit_val.bin',
  docs: 'docs.bin',
  items: 'items.bin',
  prompts: 'prompts.bin',
  tags: 'tags.bin',
} as const;

export type CacheKind = 'sequences' | 'pairs' | 'feedback';

/** What a stage's cache holds. */
export function cacheKindOf(stage: CacheKey['stage']): CacheKind {
  return stage === 'dpo' ? 'pairs' : stage === 'kto' ? 'feedback' : 'sequences';
}

/** Whether a kind stores two documents (with prompt lengths) per item. */
export const isTwoSided = (k: CacheKind): boolean => k !== 'sequences';

export const MASK_IGNORE = 0;
export const MASK_TOKEN = 1;
export const MASK_EXPLICIT = 2;

export type TokenDtype = 'u8' | 'u16' | 'i32';
export const TOKEN_BYTES: Record<TokenDtype, number> = { u8: 1, u16: 2, i32: 4 };

export function tokenDtypeFor(vocabSize: number): TokenDtype {
  return vocabSize <= 2 ** 8 ? 'u8' : vocabSize <= 2 ** 16 ? 'u16' : 'i32';
}

/** What decides a cache's content: equal keys give identical caches. */
export interface CacheKey {
  version: number;
  stage: 'pt' | 'sft' | 'dpo' | 'kto';
  template: string;
  templateOptions: Record<string, unknown>;
  cutoffLen: number;
  packing: boolean;
  maxSamples: number | null;
  /** kto only: rows per preprocessing batch (they decide the KL pairing) */
  feedbackBatchRows?: number;
  /** each dataset as resolved (columns, tags, format) and its file's identity */
  datasets: (Omit<DatasetSpec, 'file'> & { file: string; size: number; mtimeMs: number })[];
  tokenizer: { kind: 'byte' | 'hf'; vocabSize: number; files: { name: string; sha256: string }[] };
}

export interface CacheCounts {
  tokens: number;
  docs: number;
  /** sequences (pt/sft), pairs (dpo) or examples (kto) */
  items: number;
  explicit: number;
}

export interface CacheMeta {
  format: typeof CACHE_FORMAT;
  version: number;
  digest: string;
  /** the key it was built from (as written; compared field by field when a job reuses it) */
  key: CacheKey | Record<string, unknown>;
  kind: CacheKind;
  tokenDtype: TokenDtype;
  pack: PackOptions;
  counts: CacheCounts;
  stats: DataStats;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Validates a parsed meta.json (a foreign or damaged directory is a DataError naming the file and field). */
export function parseCacheMeta(json: unknown, file: string): CacheMeta {
  const bad = (field: string, msg: string): never => {
    throw new DataError(msg, { file, field });
  };
  const obj = (v: unknown, field: string): Record<string, unknown> => (isObj(v) ? v : bad(field, 'must be a JSON object'));
  const count = (v: unknown, field: string): number => (isCount(v) ? v : bad(field, 'must be a non-negative integer'));
  const str = (v: unknown, field: string): string => (typeof v === 'string' ? v : bad(field, 'must be a string'));
  const m = obj(json, 'meta');
  if (m.format !== CACHE_FORMAT) bad('format', `is not a token cache of this program (expected '${CACHE_FORMAT}')`);
  if (m.version !== CACHE_VERSION) bad('version', `is ${JSON.stringify(m.version)}; this build reads version ${CACHE_VERSION} (delete the directory or set overwrite_cache: true to rebuild it)`);
  const digest = str(m.digest, 'digest');
  if (!/^[0-9a-f]{64}$/.test(digest)) bad('digest', 'must be a sha256 hex digest');
  const kind = m.kind === 'sequences' || m.kind === 'pairs' || m.kind === 'feedback' ? m.kind : bad('kind', "must be 'sequences', 'pairs' or 'feedback'");
  const tokenDtype = m.tokenDtype === 'u8' || m.tokenDtype === 'u16' || m.tokenDtype === 'i32' ? m.tokenDtype : bad('tokenDtype', "must be 'u8', 'u16' or 'i32'");
  const p = obj(m.pack, 'pack');
  if (typeof p.packing !== 'boolean') bad('pack.packing', 'must be a boolean');
  const overflow = p.overflow === 'split' || p.overflow === 'truncate' ? p.overflow : bad('pack.overflow', "must be 'split' or 'truncate'");
  const pack: PackOptions = { cutoffLen: count(p.cutoffLen, 'pack.cutoffLen'), packing: p.packing === true, overflow };
  const c = obj(m.counts, 'counts');
  const counts: CacheCounts = { tokens: count(c.tokens, 'counts.tokens'), docs: count(c.docs, 'counts.docs'), items: count(c.items, 'counts.items'), explicit: count(c.explicit, 'counts.explicit') };
  if (isTwoSided(kind) && counts.docs !== 2 * counts.items) bad('counts', `a ${kind} cache holds two documents per item`);
  const st = obj(m.stats, 'stats');
  if (!Array.isArray(st.datasets)) bad('stats.datasets', 'must be an array');
  const datasets = (st.datasets as unknown[]).map((d, i) => {
    const o = obj(d, `stats.datasets[${i}]`);
    return { name: str(o.name, `stats.datasets[${i}].name`), file: str(o.file, `stats.datasets[${i}].file`), examples: count(o.examples, `stats.datasets[${i}].examples`) };
  });
  const stats: DataStats = {
    datasets,
    examples: count(st.examples, 'stats.examples'),
    items: count(st.items, 'stats.items'),
    tokens: count(st.tokens, 'stats.tokens'),
    supervisedTokens: count(st.supervisedTokens, 'stats.supervisedTokens'),
  };
  return { format: CACHE_FORMAT, version: CACHE_VERSION, digest, key: obj(m.key, 'key'), kind, tokenDtype, pack, counts, stats };
}
