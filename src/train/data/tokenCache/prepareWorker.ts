/**
 * Entry of the thread that builds a token cache (started by buildTokenCache.ts, never run by
 * hand): runs buildCache with the request it was given and posts progress, then the cache's meta
 * or the error. It keeps the rank's main thread free for heartbeats whatever the data size; it
 * must never publish the directory (the starting thread does).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { buildCache, type BuildRequest } from './buildCache.js';
import type { PrepareReply } from './buildTokenCache.js';
import { toWireError } from './wireError.js';

const req: BuildRequest = workerData;
const port = parentPort!;
const send = (m: PrepareReply) => port.postMessage(m);
buildCache(req, (progress) => send({ progress })).then(
  (meta) => send({ meta }),
  (e: unknown) => send({ error: toWireError(e) }),
);
