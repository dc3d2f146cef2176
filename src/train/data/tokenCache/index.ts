/**
 * The token cache: a dataset tokenized once per digest of its inputs, written on worker threads
 * with bounded memory, and mapped read-only by every rank (see prepareTokenCache.ts for who
 * builds it and where it lives, cacheLayout.ts for the files).
 */
export { prepareTokenCache, CACHE_STORE_KEY, type TokenCacheJob, type CacheParty, type PreparedCache } from './prepareTokenCache.js';
export { TokenCache } from './TokenCache.js';
export { buildTokenCache, type BuildOptions } from './buildTokenCache.js';
export { buildCache, defaultWorkers, type BuildRequest, type BuildProgress } from './buildCache.js';
export { cacheKeyOf, cacheDigest, canonicalJson, keyDifferences } from './cacheKey.js';
export { CACHE_FILES, CACHE_VERSION, tokenDtypeFor, parseCacheMeta, type CacheMeta, type CacheKey, type TokenDtype } from './cacheLayout.js';
export { cacheDirFor, publishCache, readCacheMeta, sweepStaleBuilds } from './cacheStore.js';
