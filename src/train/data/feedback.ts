/**
 * KTO data (LLaMA-Factory's feedback processor): every example is its prompt and answer, tagged
 * desirable or not, plus a mismatched sequence for the KL estimate: the same prompt with the
 * answer of the example before it in its preprocessing batch (the first takes the last's),
 * LLaMA-Factory's "+1 offset of the completions". Batches are preprocessing_batch_size rows
 * (LLaMA-Factory's map batches: 1000 by default) within one dataset, so the pairing is a pure
 * function of the row order. Each sequence is truncated on its own (infer_seqlen). Pure and synchronous (the
 * token cache's threads and the in-memory path share it); it must never pair rows across
 * datasets or depend on how many threads encode.
 */
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';
import { DataError } from './DataError.js';
import type { EncodeOptions } from './encodeExample.js';
import type { Example, FeedbackExample } from './formats.js';
import { answerSequence, type PreferenceSequence } from './sequences.js';
import { encodeAnswer, type TokenizedAnswer } from './templates.js';

/** Rows per preprocessing batch (LLaMA-Factory's preprocessing_batch_size default). */
export const FEEDBACK_BATCH_ROWS = 1000;

export interface EncodedFeedback {
  target: TokenizedAnswer;
  /** the prompt of `target` with another example's answer */
  kl: TokenizedAnswer;
  desirable: boolean;
}

/** One KTO item: the trained sequence, its mismatched KL sequence, and its tag. */
export interface FeedbackItem {
  target: PreferenceSequence;
  kl: PreferenceSequence;
  desirable: boolean;
}

/** The examples of one preprocessing batch, each with the answer of the one before it (cyclically). */
export function encodeFeedbackBatch(examples: readonly Example[], tok: TextTokenizer, o: EncodeOptions): EncodedFeedback[] {
  const ex = examples.map((e): FeedbackExample => {
    if (e.kind !== 'feedback') throw new DataError('stage kto needs answers tagged by a kto_tag column (true: desirable, false: undesirable)', e.origin);
    return e;
  });
  const n = ex.length;
  return ex.map((e, k) => ({
    target: encodeAnswer(tok, o.template, e, e.response, o.cutoffLen, o.templateOptions),
    kl: encodeAnswer(tok, o.template, e, ex[(k + n - 1) % n]!.response, o.cutoffLen, o.templateOptions),
    desirable: e.desirable,
  }));
}

export function feedbackItem(e: EncodedFeedback): FeedbackItem {
  return { target: answerSequence(e.target.prompt, e.target.response), kl: answerSequence(e.kl.prompt, e.kl.response), desirable: e.desirable };
}
