/**
 * Counts of the native addon's async calls (worker hops), by binding name, for benchmarks and
 * tests that check how many hops a training step costs. A snapshot is cheap (one small object);
 * the counters only ever grow, so a difference of two snapshots is the calls made in between.
 */
import { native } from './native.js';

export type NativeCallCounts = Record<string, number>;

/** Calls queued since the addon loaded (the single-kernel bindings of ops/ count as `kernel`). */
export function nativeCallCounts(): NativeCallCounts {
  return native().nativeCallCounts();
}

/** The calls made since `before` (a snapshot), by binding name, with their `total`; zero counts left out. */
export function nativeCallsSince(before: NativeCallCounts): NativeCallCounts & { total: number } {
  const out: NativeCallCounts & { total: number } = { total: 0 };
  for (const [name, n] of Object.entries(nativeCallCounts())) {
    const d = n - (before[name] ?? 0);
    if (d === 0) continue;
    out[name] = d;
    out.total += d;
  }
  return out;
}
