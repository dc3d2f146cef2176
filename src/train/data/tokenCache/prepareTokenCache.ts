/**
 * A job's token cache, ready to train on: found by the digest of everything that decides it
 * (cacheKey.ts), built once when missing, then mapped by every rank.
 *
 * Who builds: rank 0 (every rank computes the same key; rank 0 reuses or builds, then publishes
 * the cache's directory in the rendezvous store; the other ranks wait for that key, with the
 * coordinator watching rank 0's heartbeats meanwhile). A rank that cannot see the published
 * directory (output_dir not shared between hosts) builds its own copy beside it.
 *
 * Where: `<output_dir>/token_cache/<digest>/`, or `tokenized_path` when set, with LLaMA-Factory's
 * rule for that key: a directory that holds a saved cache is loaded as it is, whatever the other
 * data arguments say (a warning names the ones that differ), and an empty or missing one is
 * built and saved, then trained on (LLaMA-Factory also goes on to train after saving). A
 * tokenized_path of another stage kind, or holding files that are not a cache of ours (an Arrow
 * dataset saved by LLaMA-Factory), is refused. `overwrite_cache: true` rebuilds the digest's
 * cache in output_dir (as LLaMA-Factory ignores its datasets cache); a saved tokenized_path is
 * never rebuilt by it (delete the directory to rebuild, as there).
 *
 * Must never let ranks train on different data: every rank opens the directory rank 0 named.
 */
import type { RendezvousStore } from '../../../engine/stores.js';
import { resolveDatasets } from '../datasetInfo.js';
import { DataError } from '../DataError.js';
import { checkCutoff, packOptions } from '../prepareData.js';
import type { Stage } from '../formats.js';
import type { SftOptions, TemplateName } from '../templates.js';
import { defaultWorkers, type BuildProgress, type BuildRequest } from './buildCache.js';
import { buildTokenCache } from './buildTokenCache.js';
import { cacheDigest, cacheKeyOf, keyDifferences } from './cacheKey.js';
import { cacheKindOf, tokenDtypeFor, type CacheKind, type CacheMeta } from './cacheLayout.js';
import { cacheDirFor, foreignContent, readCacheMeta } from './cacheStore.js';
import { TokenCache } from './TokenCache.js';

export interface TokenCacheJob {
  stage: Stage;
  dataset: readonly string[];
  datasetDir: string;
  template: TemplateName;
  /** default_system, enable_thinking, train_on_prompt, mask_history (they change the tokens and labels) */
  templateOptions?: SftOptions;
  cutoffLen: number;
  maxSamples: number | null;
  /** resolved (true for pt by default) */
  packing: boolean;
  outputDir: string;
  tokenizedPath: string | null;
  overwriteCache: boolean;
  /** tokenizer threads (preprocessing_num_workers); null: cores - 1, at least 1 */
  workers: number | null;
  /** the model directory (its tokenizer.json, if any, is the tokenizer) */
  modelDir: string | null;
  vocabSize: number;
  /** kto: rows per preprocessing batch (preprocessing_batch_size) */
  feedbackBatchRows?: number;
}

export interface CacheParty {
  rank: number;
  world: number;
  /** the rendezvous store (unused when world is 1) */
  store: RendezvousStore;
  signal?: AbortSignal;
  info(message: string): void;
  warn(message: string): void;
}

export interface PreparedCache {
  cache: TokenCache;
  /** whether this process built it (false: reused, or built by rank 0) */
  built: boolean;
  /** seconds from the call until the cache was open */
  seconds: number;
}

/** The store key under which rank 0 publishes the cache directory (per restart attempt, as the store is). */
export const CACHE_STORE_KEY = 'data/token_cache';
const WAIT_SLICE_MS = 10_000;

export async function prepareTokenCache(job: TokenCacheJob, party: CacheParty): Promise<PreparedCache> {
  const t0 = performance.now();
  checkCutoff(job.cutoffLen);
  const specs = resolveDatasets(job.dataset, job.datasetDir);
  const pack = packOptions(job);
  const key = cacheKeyOf({ stage: job.stage, template: job.template, templateOptions: job.templateOptions ?? {}, specs, pack, maxSamples: job.maxSamples, modelDir: job.modelDir, vocabSize: job.vocabSize, feedbackBatchRows: job.feedbackBatchRows });
  const digest = cacheDigest(key);
  const request: BuildRequest = {
    dir: job.tokenizedPath ?? cacheDirFor(job.outputDir, digest),
    key,
    digest,
    specs,
    opts: { stage: job.stage, template: job.template, cutoffLen: job.cutoffLen, templateOptions: job.templateOptions ?? {}, feedbackBatchRows: job.feedbackBatchRows },
    pack,
    maxSamples: job.maxSamples,
    tokenDtype: tokenDtypeFor(job.vocabSize),
    tokenizer: { modelDir: job.modelDir, vocabSize: job.vocabSize },
    workers: job.workers ?? defaultWorkers(),
  };
  let dir: string;
  let built = false;
  if (party.rank === 0 || party.world === 1) {
    ({ dir, built } = await ensureCache(job, request, party));
    if (party.world > 1) await party.store.set(CACHE_STORE_KEY, new TextEncoder().encode(JSON.stringify({ dir, digest })));
  } else {
    dir = await awaitPublished(party);
    if (readCacheMeta(dir) === null) {
      party.warn(`the token cache rank 0 built (${dir}) is not visible here (output_dir not shared between hosts?): building a copy`);
      built = (await ensureCache(job, { ...request, dir }, party)).built;
    }
  }
  const cache = TokenCache.open(dir, { vocabSize: job.vocabSize });
  if (cache.kind !== cacheKindOf(job.stage)) {
    cache.close();
    throw new DataError(`holds ${KIND_WORDS[cache.kind]}, but this job's stage is ${job.stage}`, { file: dir, field: 'tokenized_path' });
  }
  return { cache, built, seconds: (performance.now() - t0) / 1e3 };
}

/** Reuses the cache at request.dir when it is valid for the job (or saved at tokenized_path), else builds it. */
async function ensureCache(job: TokenCacheJob, request: BuildRequest, party: CacheParty): Promise<{ dir: string; built: boolean }> {
  const dir = request.dir;
  const foreign = foreignContent(dir);
  if (foreign) {
    throw new DataError(`holds files that are not a token cache of this program (${foreign.join(', ')}${foreign.length === 5 ? ', ...' : ''}); give an empty or missing directory`, { file: dir, field: job.tokenizedPath !== null ? 'tokenized_path' : 'output_dir' });
  }
  const existing = readCacheMeta(dir);
  if (existing !== null && job.tokenizedPath !== null) {
    if (existing.digest !== request.digest) {
      party.warn(`tokenized_path ${dir}: loading the saved token cache as it is, although it was built with other ${keyDifferences(existing.key, request.key).join(', ')} (as in LLaMA-Factory, a saved tokenized dataset ignores the data arguments; delete it to rebuild)`);
    } else party.info(`tokenized_path ${dir}: reusing the saved token cache (${describe(existing)})`);
    return { dir, built: false };
  }
  if (existing !== null && existing.digest === request.digest && !job.overwriteCache) {
    party.info(`token cache ${dir}: reusing it (${describe(existing)})`);
    return { dir, built: false };
  }
  party.info(`token cache ${dir}: ${existing === null ? 'building it' : job.overwriteCache ? 'rebuilding it (overwrite_cache)' : 'rebuilding it (built from other inputs)'} with ${request.workers} tokenizer thread(s)`);
  const t0 = performance.now();
  let lastNote = t0;
  const meta = await buildTokenCache(request, {
    replace: existing !== null,
    signal: party.signal,
    onProgress: (p: BuildProgress) => {
      if (performance.now() - lastNote < 10_000) return;
      lastNote = performance.now();
      party.info(`preparing data: ${p.rows} rows, ${(p.bytes / 1e6).toFixed(0)} MB read in ${p.seconds.toFixed(0)} s (${(p.bytes / 1e6 / Math.max(p.seconds, 1e-9)).toFixed(1)} MB/s)`);
    },
  });
  party.info(`token cache ${dir}: built in ${((performance.now() - t0) / 1e3).toFixed(1)} s (${describe(meta)})`);
  return { dir, built: true };
}

function describe(m: CacheMeta): string {
  return `${m.stats.examples} rows, ${m.counts.items} ${m.kind === 'pairs' ? 'pairs' : m.kind === 'feedback' ? 'KTO examples' : 'sequences'}, ${m.counts.tokens} tokens, ${m.stats.supervisedTokens} supervised`;
}

const KIND_WORDS: Record<CacheKind, string> = { sequences: 'sequences (stage pt or sft)', pairs: 'preference pairs (stage dpo)', feedback: 'KTO examples (stage kto)' };

function isWaitTimeout(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  const message = e instanceof Error ? e.message : '';
  return code === 'ERR_COMM_TIMEOUT' || code === 'ERR_RENDEZVOUS_TIMEOUT' || (code === 'ERR_RENDEZVOUS' && /not set within/.test(message));
}

/** Waits (in slices, so an abort is seen promptly) for rank 0's published directory. */
async function awaitPublished(party: CacheParty): Promise<string> {
  const t0 = performance.now();
  let lastNote = t0;
  for (;;) {
    party.signal?.throwIfAborted();
    let raw: Uint8Array;
    try {
      raw = await abortable(party.store.get(CACHE_STORE_KEY, WAIT_SLICE_MS), party.signal);
    } catch (e) {
      if (!isWaitTimeout(e)) throw e;
      if (performance.now() - lastNote > 60_000) {
        lastNote = performance.now();
        party.info(`waiting for rank 0 to prepare the token cache (${((lastNote - t0) / 1e3).toFixed(0)} s so far)`);
      }
      continue;
    }
    const v: unknown = JSON.parse(new TextDecoder().decode(raw));
    const dir = typeof v === 'object' && v !== null && 'dir' in v ? v.dir : undefined;
    if (typeof dir !== 'string') throw Object.assign(new Error(`rank 0 published a malformed token cache entry: ${JSON.stringify(v)}`), { code: 'ERR_RENDEZVOUS' });
    return dir;
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
