/**
 * Deterministic model inputs shared by the engine and sequence-parallel tests: a seeded LCG and
 * packed documents with labels shifted inside each document (the last token of a document is
 * ignored) and positions restarting per document. Never uses Math.random (tests must replay).
 */

/** Uniform floats in [0, 1) from a 32-bit LCG. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export interface PackedDocs {
  tokens: Int32Array;
  labels: Int32Array;
  positions: Int32Array;
  docLens: Int32Array;
}

/** Documents of lengths `lens`, packed, with tokens uniform in [0, vocab). */
export function packedDocs(vocab: number, lens: number[], seed: number): PackedDocs {
  const r = lcg(seed);
  const n = lens.reduce((a, b) => a + b, 0);
  const tokens = Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
  const labels = new Int32Array(n);
  const positions = new Int32Array(n);
  let o = 0;
  for (const len of lens) {
    for (let i = 0; i < len; i++) {
      positions[o + i] = i;
      labels[o + i] = i + 1 < len ? tokens[o + i + 1]! : -100;
    }
    o += len;
  }
  return { tokens, labels, positions, docLens: Int32Array.from(lens) };
}
