/**
 * The data plane's seeded PRNG and shuffle. A permutation is a pure function of (seed, epoch,
 * n): the same on every process and after a resume. It must never read Math.random or a clock.
 */

/** Mixes 32-bit words into a well-spread 32-bit state (murmur3 finalizer). */
function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A small counter-free generator (mulberry32); uniform 32-bit outputs. */
export function createRng(...keys: number[]): () => number {
  let s = 0x9e3779b9;
  for (const k of keys) s = mix32((s ^ mix32(k >>> 0)) + 0x6d2b79f5);
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Uniform integer in [0, bound) without modulo bias (rejection sampling). */
export function randomBelow(next: () => number, bound: number): number {
  if (bound <= 0 || bound > 2 ** 32) throw new RangeError(`bound ${bound} out of range`);
  const limit = 2 ** 32 - (2 ** 32 % bound);
  for (;;) {
    const x = next();
    if (x < limit) return x % bound;
  }
}

/** Fisher–Yates permutation of 0..n-1 keyed by (seed, epoch). */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const next = createRng(seed, epoch, 0x5eed);
  for (let i = n - 1; i > 0; i--) {
    const j = randomBelow(next, i + 1);
    const tmp = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = tmp;
  }
  return perm;
}
