/** Reference log-probs scored once before training and cached (precompute_ref_log_probs). */
export { precomputeReference, type PrecomputeOptions, type PreferenceData } from './precomputeReference.js';
export { readReferenceCache, referenceCachePath, referenceKey, writeReferenceCache } from './referenceCacheFile.js';
export { scoreReference, type ScoredSet } from './scoreReference.js';
