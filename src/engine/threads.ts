/**
 * Thread count for OpenBLAS and the OpenMP kernels. Default: the host's cores divided by the
 * number of ranks on this host (so co-located ranks do not oversubscribe the machine).
 */
import { availableParallelism } from 'node:os';
import { native } from './native.js';
import { EngineError } from './errors.js';

export interface ThreadOptions {
  /** Explicit thread count; wins over everything else. */
  threads?: number;
  /** Ranks sharing this host (default 1). */
  localRanks?: number;
}

export function defaultThreads(localRanks = 1): number {
  return Math.max(1, Math.floor(availableParallelism() / Math.max(1, localRanks)));
}

/** Applies and returns the thread count. */
export function configureThreads(o: ThreadOptions = {}): number {
  const env = process.env.ULYSSES_THREADS ? Number(process.env.ULYSSES_THREADS) : undefined;
  const n = o.threads ?? env ?? defaultThreads(o.localRanks);
  if (!Number.isInteger(n) || n < 1) throw new EngineError('ERR_ARG', `threads must be a positive integer, got ${n}`);
  native().setThreads(n);
  return n;
}
