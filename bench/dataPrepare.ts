/**
 * The preparing process of `bench data` (bench/data.ts): prepares (or reuses) one job's token
 * cache exactly as rank 0 of a one-rank job does, while a 10 ms timer measures the longest stall
 * of its main thread (what a heartbeat timer would see), then prints one JSON line: seconds,
 * whether it built, the cache's counts, the stall and this process's peak RSS.
 * Usage: node dataPrepare.js <job JSON>. Must never print anything else on stdout.
 */
import { MemoryStore } from '../src/engine/stores.js';
import { prepareTokenCache, type TokenCacheJob } from '../src/train/data/index.js';

const job = JSON.parse(process.argv[2]!) as TokenCacheJob;
let last = performance.now();
let stallMs = 0;
const timer = setInterval(() => {
  const now = performance.now();
  stallMs = Math.max(stallMs, now - last);
  last = now;
}, 10);
const notes: string[] = [];
const { cache, built, seconds } = await prepareTokenCache(job, { rank: 0, world: 1, store: new MemoryStore(), info: (m) => notes.push(m), warn: (m) => notes.push(m) });
clearInterval(timer);
const out = { seconds, built, items: cache.meta.counts.items, tokens: cache.meta.counts.tokens, rows: cache.meta.stats.examples, stallMs, peakRssBytes: process.resourceUsage().maxRSS * 1024, notes };
cache.close();
process.stdout.write(JSON.stringify(out) + '\n');
