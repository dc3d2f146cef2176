/**
 * Builds a token cache on a worker thread and publishes it: the calling thread (a rank's main
 * thread) only waits for messages, so it keeps answering heartbeats however long the build
 * takes. The build writes into a temporary directory that is renamed into place when complete
 * and removed on any failure or abort. Must never leave the worker running or its temporary
 * directory behind when it returns or throws.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { BuildProgress, BuildRequest } from './buildCache.js';
import type { CacheMeta } from './cacheLayout.js';
import { publishCache, sweepStaleBuilds, tmpDirFor } from './cacheStore.js';
import { fromWireError, type WireError } from './wireError.js';
import { workerUrl } from './workerUrl.js';

/** Messages of the preparing thread. */
export type PrepareReply = { progress: BuildProgress } | { meta: CacheMeta } | { error: WireError };

export interface BuildOptions {
  /** replace a cache already at `dir` (overwrite_cache) */
  replace: boolean;
  signal?: AbortSignal;
  onProgress?: (p: BuildProgress) => void;
}

/** `req.dir` is where the cache must end up; the build itself goes to a temporary sibling. */
export async function buildTokenCache(req: BuildRequest, o: BuildOptions): Promise<CacheMeta> {
  const dir = req.dir;
  mkdirSync(dirname(dir), { recursive: true });
  sweepStaleBuilds(dirname(dir));
  const tmp = tmpDirFor(dir);
  const worker = new Worker(workerUrl('prepareWorker'), { workerData: { ...req, dir: tmp } });
  let settled = false;
  try {
    const meta = await new Promise<CacheMeta>((resolve, reject) => {
      const onAbort = () => reject(o.signal!.reason ?? new Error('aborted'));
      o.signal?.addEventListener('abort', onAbort, { once: true });
      const done = (f: () => void) => {
        if (settled) return;
        settled = true;
        o.signal?.removeEventListener('abort', onAbort);
        f();
      };
      worker.on('message', (m: PrepareReply) => {
        if ('progress' in m) o.onProgress?.(m.progress);
        else if ('meta' in m) done(() => resolve(m.meta));
        else done(() => reject(fromWireError(m.error)));
      });
      worker.on('error', (e) => done(() => reject(e)));
      worker.on('exit', (code) => done(() => reject(Object.assign(new Error(`the data preparation thread exited (code ${code}) before it finished`), { code: 'ERR_WORKER' }))));
      if (o.signal?.aborted) onAbort();
    });
    publishCache(tmp, dir, o.replace);
    return { ...meta };
  } finally {
    settled = true;
    await worker.terminate();
    rmSync(tmp, { recursive: true, force: true });
  }
}
