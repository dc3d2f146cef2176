/**
 * Sequence building: tokenized samples become the trainer's unit, one (optionally packed)
 * sequence with labels already shifted (labels[t] = target of position t = the next token of
 * the same document, -100 where ignored), position ids restarting at every document, and the
 * document lengths. The shift happens here, on the whole sequence, before any sharding; it never
 * crosses a document boundary (the last token of a document has no target).
 */
import { IGNORE_INDEX, type TokenizedSample } from './templates.js';

export interface Sequence {
  tokens: Int32Array;
  /** Shifted: labels[t] is the target for position t, -100 where ignored. */
  labels: Int32Array;
  /** Global position ids, restarting at 0 for each packed document. */
  positions: Int32Array;
  /** Lengths of the packed documents, summing to tokens.length (negative = padding). */
  docLens: Int32Array;
}

/** One side of a DPO pair: its prompt (masked out of labels) is the first `promptLen` tokens. */
export interface PreferenceSequence extends Sequence { promptLen: number }
export interface PreferencePair { chosen: PreferenceSequence; rejected: PreferenceSequence }

export interface PackOptions {
  cutoffLen: number;
  /** Concatenate samples into sequences of at most cutoffLen tokens, boundaries kept. */
  packing: boolean;
  /**
   * What to do with a sample longer than cutoffLen: 'split' continues it in the next chunk as a
   * new document (PT: no token is dropped), 'truncate' keeps its first cutoffLen tokens.
   */
  overflow: 'split' | 'truncate';
}

/** Builds one sequence from documents (unshifted labels), shifting inside each document. */
export function sequenceFromDocs(docs: readonly TokenizedSample[]): Sequence {
  let n = 0;
  for (const d of docs) n += d.inputIds.length;
  const tokens = new Int32Array(n);
  const labels = new Int32Array(n);
  const positions = new Int32Array(n);
  const docLens = new Int32Array(docs.length);
  let o = 0;
  docs.forEach((d, k) => {
    const len = d.inputIds.length;
    docLens[k] = len;
    for (let i = 0; i < len; i++) {
      tokens[o + i] = d.inputIds[i]!;
      positions[o + i] = i;
      labels[o + i] = i + 1 < len ? d.labels[i + 1]! : IGNORE_INDEX;
    }
    o += len;
  });
  return { tokens, labels, positions, docLens };
}

function slice(d: TokenizedSample, a: number, b: number): TokenizedSample {
  return { inputIds: d.inputIds.slice(a, b), labels: d.labels.slice(a, b) };
}

/** Next-fit packing in the given order (deterministic); empty samples are skipped. */
export function buildSequences(samples: Iterable<TokenizedSample>, opt: PackOptions): Sequence[] {
  const cutoff = opt.cutoffLen;
  const out: Sequence[] = [];
  let cur: TokenizedSample[] = [];
  let curLen = 0;
  const flush = (): void => {
    if (cur.length > 0) out.push(sequenceFromDocs(cur));
    cur = [];
    curLen = 0;
  };
  for (const s of samples) {
    const len = s.inputIds.length;
    if (len === 0) continue;
    if (!opt.packing) {
      if (opt.overflow === 'truncate' || len <= cutoff) out.push(sequenceFromDocs([slice(s, 0, cutoff)]));
      else for (let a = 0; a < len; a += cutoff) out.push(sequenceFromDocs([slice(s, a, a + cutoff)]));
      continue;
    }
    if (opt.overflow === 'truncate') {
      const piece = len > cutoff ? slice(s, 0, cutoff) : s;
      if (curLen + piece.inputIds.length > cutoff) flush();
      cur.push(piece);
      curLen += piece.inputIds.length;
      continue;
    }
    for (let a = 0; a < len;) {
      const take = Math.min(cutoff - curLen, len - a);
      cur.push(a === 0 && take === len ? s : slice(s, a, a + take));
      curLen += take;
      a += take;
      if (curLen === cutoff) flush();
    }
  }
  flush();
  return out;
}

/** Prompt + answer as one sequence, the answer's tokens supervised (a DPO side, a KTO example). */
export function answerSequence(prompt: readonly number[], answer: readonly number[]): PreferenceSequence {
  const inputIds = [...prompt, ...answer];
  const labels = [...prompt.map(() => IGNORE_INDEX), ...answer];
  return { ...sequenceFromDocs([{ inputIds, labels }]), promptLen: prompt.length };
}

/** A DPO pair: prompt + answer for each side, answer tokens supervised. */
export function preferencePair(prompt: readonly number[], chosen: readonly number[], rejected: readonly number[]): PreferencePair {
  return { chosen: answerSequence(prompt, chosen), rejected: answerSequence(prompt, rejected) };
}
