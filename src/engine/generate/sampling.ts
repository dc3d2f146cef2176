/**
 * Choosing the next token from logits as Hugging Face's generate does with LLaMA-Factory's
 * generating arguments: greedy (do_sample false or temperature 0: the highest logit, lowest id on
 * ties) or sampling after the repetition penalty, temperature, top-k and top-p, in that order
 * (HF's processors then warpers). The random draw is counter-based: Philox4x32-10 keyed by the
 * seed, with the token's index (and a stream, e.g. the chat turn) as the counter, so the same
 * seed gives the same tokens on any machine and any thread count. Pure apart from the Philox
 * call; must never draw unkeyed randomness.
 */
import { EngineError } from '../errors.js';
import { philox4x32 } from '../ops/optim.js';

export interface SamplingOptions {
  /** false: greedy decoding */
  doSample: boolean;
  /** > 0 (0 means greedy, as LLaMA-Factory's chat engine treats it) */
  temperature: number;
  /** in (0, 1]; 1: off */
  topP: number;
  /** >= 0; 0: off */
  topK: number;
  /** >= 1 divides positive logits (multiplies negative ones) of tokens already in the sequence; 1: off */
  repetitionPenalty: number;
  seed: number;
}

/** Philox key domain of sampling draws ("Samp"), apart from every other stream of the engine. */
const SAMPLE_DOMAIN = 0x53616d70;

export function checkSampling(o: SamplingOptions): void {
  const bad = (m: string) => new EngineError('ERR_ARG', `sampling: ${m}`);
  if (!(o.temperature >= 0 && Number.isFinite(o.temperature))) throw bad(`temperature must be a finite number >= 0, got ${o.temperature}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw bad(`top_p must be in (0, 1], got ${o.topP}`);
  if (!Number.isInteger(o.topK) || o.topK < 0) throw bad(`top_k must be an integer >= 0, got ${o.topK}`);
  if (!(o.repetitionPenalty > 0 && Number.isFinite(o.repetitionPenalty))) throw bad(`repetition_penalty must be a finite number > 0, got ${o.repetitionPenalty}`);
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) throw bad(`seed must be a non-negative integer, got ${o.seed}`);
}

/** Highest logit, lowest id among equal maxima. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** A uniform draw in (0, 1) with 53 random bits, keyed by (seed, stream, index). */
export function uniformDraw(seed: number, stream: number, index: number): number {
  const lo = seed % 2 ** 32, hi = Math.floor(seed / 2 ** 32);
  const w = philox4x32([index % 2 ** 32, Math.floor(index / 2 ** 32), stream >>> 0, 0], [lo, (hi ^ SAMPLE_DOMAIN) >>> 0]);
  return ((w[0]! >>> 5) * 2 ** 26 + (w[1]! >>> 6) + 0.5) / 2 ** 53;
}

/**
 * The next token. `seen`: the ids of the whole sequence so far (for the repetition penalty);
 * `index` and `stream` key the draw. Never modifies `logits`.
 */
export function sampleToken(logits: Float32Array, seen: ReadonlySet<number>, o: SamplingOptions, index: number, stream = 0): number {
  let scores: Float64Array | Float32Array = logits;
  if (o.repetitionPenalty !== 1 && seen.size > 0) {
    scores = Float64Array.from(logits);
    for (const id of seen) {
      if (id < 0 || id >= scores.length) continue;
      const s = scores[id]!;
      scores[id] = s < 0 ? s * o.repetitionPenalty : s / o.repetitionPenalty;
    }
  }
  if (!o.doSample || o.temperature === 0) return argmax(scores);
  const V = scores.length;
  // Candidates: every id, or those at or above the k-th largest score (HF keeps ties of it).
  let cand: number[];
  if (o.topK > 0 && o.topK < V) {
    const kth = kthLargest(scores, o.topK);
    cand = [];
    for (let i = 0; i < V; i++) if (scores[i]! >= kth) cand.push(i);
  } else {
    cand = Array.from({ length: V }, (_, i) => i);
  }
  // Descending score, ascending id among equals (a fixed order: the draw depends on it).
  cand.sort((a, b) => scores[b]! - scores[a]! || a - b);
  const t = o.temperature;
  const mx = scores[cand[0]!]! / t;
  const p = new Float64Array(cand.length);
  let z = 0;
  for (let i = 0; i < cand.length; i++) z += p[i] = Math.exp(scores[cand[i]!]! / t - mx);
  // top-p: the smallest head of the sorted list whose probability reaches top_p (at least one token)
  let keep = cand.length;
  if (o.topP < 1) {
    let cum = 0;
    for (let i = 0; i < cand.length; i++) {
      cum += p[i]! / z;
      if (cum >= o.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  let mass = 0;
  for (let i = 0; i < keep; i++) mass += p[i]!;
  const u = uniformDraw(o.seed, stream, index) * mass;
  let acc = 0;
  for (let i = 0; i < keep; i++) {
    acc += p[i]!;
    if (u < acc) return cand[i]!;
  }
  return cand[keep - 1]!;
}

function kthLargest(x: ArrayLike<number>, k: number): number {
  // A min-heap of the k largest seen so far: O(V log k), fine for the usual k (tens).
  const heap: number[] = [];
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < heap.length && heap[l]! < heap[m]!) m = l;
      if (r < heap.length && heap[r]! < heap[m]!) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (heap.length < k) {
      heap.push(v);
      for (let j = heap.length - 1; j > 0; ) {
        const parent = (j - 1) >> 1;
        if (heap[parent]! <= heap[j]!) break;
        [heap[parent], heap[j]] = [heap[j]!, heap[parent]!];
        j = parent;
      }
    } else if (v > heap[0]!) {
      heap[0] = v;
      down(0);
    }
  }
  return heap[0]!;
}
