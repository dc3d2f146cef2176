// Preference pairs and sequence log-probs for the preference-loss tests: a seeded generator, a
// pair sharing its prompt (responses supervised, labels shifted), the log-prob of a sequence
// from a real forward of the model, and the finite-difference check of an accumulated gradient.
import type { Model } from '../../../src/engine/model/index.js';
import type { PreferenceItem } from '../../../src/train/loop/dpo.js';
import { IGNORE_INDEX, type PackedSequence } from '../../../src/train/loop/sequences.js';

export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** A prompt shared by both sides, then each side's response (supervised), labels shifted. */
export function pair(vocab: number, promptLen: number, chosenLen: number, rejectedLen: number, seed: number): PreferenceItem {
  const r = lcg(seed);
  const prompt = Array.from({ length: promptLen }, () => 3 + Math.floor(r() * (vocab - 3)));
  const side = (len: number): PackedSequence => {
    const ids = [...prompt, ...Array.from({ length: len }, () => 3 + Math.floor(r() * (vocab - 3)))];
    const n = ids.length;
    // labels[t] = ids[t + 1] when t + 1 is a response token
    const labels = Int32Array.from({ length: n }, (_, i) => (i + 1 < n && i + 1 >= promptLen ? ids[i + 1]! : IGNORE_INDEX));
    return { tokens: Int32Array.from(ids), labels };
  };
  return { chosen: side(chosenLen), rejected: side(rejectedLen) };
}

export async function logProb(model: Model, s: PackedSequence): Promise<number> {
  const tl = new Float32Array(s.tokens.length);
  await model.forward({ tokens: s.tokens, labels: s.labels, tokenLoss: tl, normalizer: 1 });
  let sum = 0;
  for (let i = 0; i < tl.length; i++) if (s.labels[i] !== IGNORE_INDEX) sum -= tl[i]!;
  return sum;
}

/**
 * Central differences (step 1e-2) of `loss` against the accumulated gradient of `policy`, at the
 * largest and one random coordinate of every third tensor: whether each is within
 * 2e-5 + 2% of the tensor's max |g|, and the compared pairs.
 */
export async function checkAgainstDifferences(policy: Model, loss: () => Promise<number>, seed = 9): Promise<{ ok: boolean; lines: string[] }> {
  const eps = 1e-2;
  const rnd = lcg(seed);
  const lines: string[] = [];
  let ok = true;
  for (const view of policy.views.filter((_, i) => i % 3 === 0)) {
    const g = policy.grad(view.name);
    const p = policy.param(view.name);
    let gmax = 0, imax = 0;
    for (let i = 0; i < g.length; i++) if (Math.abs(g[i]!) > gmax) { gmax = Math.abs(g[i]!); imax = i; }
    for (const i of new Set([imax, Math.floor(rnd() * g.length)])) {
      const old = p[i]!;
      p[i] = old + eps;
      const lp = await loss();
      p[i] = old - eps;
      const lm = await loss();
      p[i] = old;
      const fd = (lp - lm) / (2 * eps);
      if (Math.abs(fd - g[i]!) > 2e-5 + 2e-2 * gmax) ok = false;
      lines.push(`${view.name}[${i}] ${g[i]!.toExponential(3)}/${fd.toExponential(3)}`);
    }
  }
  return { ok, lines };
}
