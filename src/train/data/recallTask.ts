/**
 * The default job's synthetic long-context task: key–value recall. Each example is a haystack
 * of `KEY=VALUE;` pairs scattered in filler text, then the question `?KEY=`; the response is
 * the VALUE (then EOS). The queried pair sits in the first `needleRegion` of the sequence, so
 * with sequences >= 2048 tokens the answer lies thousands of tokens before the question and,
 * under 2-way sequence parallelism, on the other shard. Token ids are bytes (the tiny model's
 * vocab 256, special ids as ByteTokenizer: BOS 1, EOS 2). Generation is a pure function of the
 * options; it must never use Math.random.
 *
 * Alphabets: keys are uppercase letters, values are digits, filler is lowercase letters and
 * spaces, so filler can never contain a key, a value or a separator. Chance level of an exact
 * answer is 10^-valueLen.
 */
import { appendAll } from './appendAll.js';
import { createRng, randomBelow } from './rng.js';
import { IGNORE_INDEX, type TokenizedSample } from './templates.js';
import type { Sequence } from './sequences.js';

export interface RecallOptions {
  seed: number;
  /** Number of examples. */
  n: number;
  /** Exact tokens per example (>= 64; the default job uses >= 2048). */
  seqLen: number;
  /** Key–value pairs in the haystack (one is queried, the others are distractors). Default 8. */
  pairs?: number;
  keyLen?: number;
  valueLen?: number;
  /** The queried pairs lie in this leading fraction of the haystack. Default 0.25. */
  needleRegion?: number;
  /**
   * Questions per example (default 1), each about a different pair of the leading region, so a
   * sequence supervises several answers (multi-query associative recall). With more than one,
   * the example ends after the last answer (no EOS), so every supervised token is an answer token.
   */
  queries?: number;
  /**
   * After the questions, the first question is asked again this many times (default 0), each
   * after a random gap of 0..repeatGap filler tokens. Its later answers can be copied from the
   * earlier ones nearby, so they are a dense, local training signal for the same "find the key,
   * copy its value" attention that the first answer needs across the whole sequence; they are
   * supervised only when `superviseRepeats` (default true; evaluation sets turn it off, so only
   * the answers whose one source is the far needle are scored).
   */
  repeats?: number;
  repeatGap?: number;
  superviseRepeats?: boolean;
  bosId?: number;
  eosId?: number;
}

export interface RecallQuery {
  key: string;
  value: string;
  /** Token index where the queried pair `KEY=VALUE;` starts. */
  needlePos: number;
  /** Token index of the answer's first token. */
  answerPos: number;
}

/** One example; `key`, `value`, `needlePos`, `answerPos` describe its first question. */
export interface RecallExample extends TokenizedSample, RecallQuery {
  queries: RecallQuery[];
}

const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const DIGITS = '0123456789';
const FILLER = 'abcdefghijklmnopqrstuvwxyz     ';

function ascii(s: string): number[] {
  return Array.from(s, (c) => c.charCodeAt(0));
}

export function recallChance(opts: Pick<RecallOptions, 'valueLen'>): number {
  return 10 ** -(opts.valueLen ?? 2);
}

export function* recallTask(opts: RecallOptions): Generator<RecallExample> {
  const pairs = opts.pairs ?? 8;
  const keyLen = opts.keyLen ?? 3;
  const valueLen = opts.valueLen ?? 2;
  const region = opts.needleRegion ?? 0.25;
  const bos = opts.bosId ?? 1;
  const eos = opts.eosId ?? 2;
  const queries = opts.queries ?? 1;
  const repeats = opts.repeats ?? 0;
  const repeatGap = opts.repeatGap ?? 8;
  const superviseRepeats = opts.superviseRepeats ?? true;
  const pairLen = keyLen + 1 + valueLen + 1;
  const questionLen = 2 + keyLen + 1; // "\n?" KEY "="
  // one EOS ends an example of a single question; with more, the last answer ends it
  const withEos = queries === 1 && repeats === 0;
  // BOS, haystack, per question its prompt and answer, then the repeats (each at most a gap,
  // a prompt and an answer; the gaps' unused budget goes before the first repeat)
  const haystack = opts.seqLen - 1 - (queries + repeats) * (questionLen + valueLen) - repeats * repeatGap - (withEos ? 1 : 0);
  // The needle and a share of the distractors (in random order) go in [0, head), the other
  // distractors in [head, haystack): equal segments, one pair each, filler between.
  const head = Math.floor(haystack * region);
  const headPairs = 1 + Math.floor((pairs - 1) * region);
  const tailPairs = pairs - headPairs;
  const headSeg = Math.floor(head / headPairs);
  const tailSeg = tailPairs > 0 ? Math.floor((haystack - head) / tailPairs) : Infinity;
  if (!Number.isInteger(opts.n) || opts.n < 0) throw new RangeError(`n must be a non-negative integer, got ${opts.n}`);
  if (!Number.isInteger(pairs) || pairs < 1) throw new RangeError(`pairs must be a positive integer, got ${pairs}`);
  if (Math.min(headSeg, tailSeg) < pairLen + 2) {
    throw new RangeError(`seqLen ${opts.seqLen} is too short for ${pairs} pairs of ${pairLen} tokens with needleRegion ${region}`);
  }
  if (!Number.isInteger(repeats) || repeats < 0 || !Number.isInteger(repeatGap) || repeatGap < 0) {
    throw new RangeError(`repeats and repeatGap must be non-negative integers, got ${repeats} and ${repeatGap}`);
  }
  if (!Number.isInteger(queries) || queries < 1 || queries > headPairs) {
    throw new RangeError(`queries must be an integer from 1 to the ${headPairs} pair(s) of the leading region, got ${queries}`);
  }
  if (26 ** keyLen < pairs) throw new RangeError(`keyLen ${keyLen} cannot give ${pairs} distinct keys`);
  for (let e = 0; e < opts.n; e++) {
    const rnd = createRng(opts.seed, e, 0x7ec4);
    const pick = (alphabet: string, len: number): string => {
      let s = '';
      for (let i = 0; i < len; i++) s += alphabet[randomBelow(rnd, alphabet.length)];
      return s;
    };
    const keys: string[] = [];
    while (keys.length < pairs) {
      const k = pick(UPPER, keyLen);
      if (!keys.includes(k)) keys.push(k);
    }
    const values = keys.map(() => pick(DIGITS, valueLen));
    const hay = ascii(pick(FILLER, haystack));
    // which head pairs are asked, in question order (a partial Fisher–Yates shuffle)
    const order = Array.from({ length: headPairs }, (_, i) => i);
    for (let i = 0; i < queries; i++) {
      const j = i + randomBelow(rnd, headPairs - i);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const needleAt: number[] = [];
    for (let p = 0; p < pairs; p++) {
      const [base, seg] = p < headPairs ? [p * headSeg, headSeg] : [head + (p - headPairs) * tailSeg, tailSeg];
      const at = base + 1 + randomBelow(rnd, seg - pairLen - 1);
      // the pair overwrites pairLen filler tokens (the haystack keeps its length)
      const pair = ascii(`${keys[p]}=${values[p]};`);
      for (let i = 0; i < pairLen; i++) hay[at + i] = pair[i]!;
      needleAt.push(1 + at);
    }
    const inputIds = appendAll([bos], hay);
    const labels = inputIds.map(() => IGNORE_INDEX);
    const asked: RecallQuery[] = [];
    for (let q = 0; q < queries; q++) {
      const p = order[q]!;
      const question = ascii(`\n?${keys[p]}=`);
      appendAll(inputIds, question);
      appendAll(labels, question.map(() => IGNORE_INDEX));
      asked.push({ key: keys[p]!, value: values[p]!, needlePos: needleAt[p]!, answerPos: inputIds.length });
      const answer = [...ascii(values[p]!), ...(withEos ? [eos] : [])];
      appendAll(inputIds, answer);
      appendAll(labels, answer);
    }
    if (repeats > 0) {
      const gaps = Array.from({ length: repeats }, () => randomBelow(rnd, repeatGap + 1));
      const spare = repeats * repeatGap - gaps.reduce((a, g) => a + g, 0);
      const filler = (n: number) => {
        const f = ascii(pick(FILLER, n));
        appendAll(inputIds, f);
        appendAll(labels, f.map(() => IGNORE_INDEX));
      };
      filler(spare);
      const first = order[0]!;
      const question = ascii(`\n?${keys[first]}=`);
      const answer = ascii(values[first]!);
      for (const g of gaps) {
        filler(g);
        appendAll(appendAll(inputIds, question), answer);
        appendAll(appendAll(labels, question.map(() => IGNORE_INDEX)), superviseRepeats ? answer : answer.map(() => IGNORE_INDEX));
      }
    }
    yield { inputIds, labels, ...asked[0]!, queries: asked };
  }
}

export interface RecallScore {
  /** Documents with at least one supervised token. */
  examples: number;
  /** Documents whose every supervised token was predicted exactly. */
  exact: number;
  tokens: number;
  tokensCorrect: number;
  /** Answers: runs of consecutive supervised tokens (one per question). */
  answers: number;
  /** Answers whose every token was predicted exactly. */
  answersCorrect: number;
  accuracy: number;
}

/**
 * Scores predictions against a sequence's shifted labels: `predicted[t]` is the model's argmax
 * at position t (the prediction for labels[t]). Per document: exact when every supervised
 * token (the value and its EOS) matches; per answer (a run of consecutive supervised tokens: one
 * question's value) when all its tokens match. Works on packed sequences via docLens.
 */
export function scoreRecall(seq: Pick<Sequence, 'labels' | 'docLens'>, predicted: ArrayLike<number>): RecallScore {
  if (predicted.length !== seq.labels.length) throw new RangeError(`predicted has ${predicted.length} tokens, labels ${seq.labels.length}`);
  let examples = 0, exact = 0, tokens = 0, tokensCorrect = 0, answers = 0, answersCorrect = 0;
  let o = 0;
  for (const dl of seq.docLens) {
    const len = Math.abs(dl);
    let sup = 0, ok = 0;
    let inAnswer = false, answerOk = true;
    for (let t = o; t < o + len; t++) {
      if (seq.labels[t] === IGNORE_INDEX) {
        if (inAnswer && answerOk) answersCorrect++;
        inAnswer = false;
        continue;
      }
      if (!inAnswer) {
        answers++;
        inAnswer = true;
        answerOk = true;
      }
      sup++;
      if (predicted[t] === seq.labels[t]) ok++;
      else answerOk = false;
    }
    if (inAnswer && answerOk) answersCorrect++;
    if (sup > 0) { examples++; if (ok === sup) exact++; }
    tokens += sup;
    tokensCorrect += ok;
    o += len;
  }
  return { examples, exact, tokens, tokensCorrect, answers, answersCorrect, accuracy: examples > 0 ? exact / examples : 0 };
}

/** Adds scores (e.g. over an evaluation set). */
export function addScores(a: RecallScore, b: RecallScore): RecallScore {
  const examples = a.examples + b.examples;
  const exact = a.exact + b.exact;
  return {
    examples,
    exact,
    tokens: a.tokens + b.tokens,
    tokensCorrect: a.tokensCorrect + b.tokensCorrect,
    answers: a.answers + b.answers,
    answersCorrect: a.answersCorrect + b.answersCorrect,
    accuracy: examples > 0 ? exact / examples : 0,
  };
}
