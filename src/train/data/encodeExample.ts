/**
 * One canonical example to token ids with the job's template: a document (pt/sft: ids and
 * unshifted labels, -100 where not trained) or a preference pair (dpo: the prompt and both
 * answers, already truncated together). Pure and synchronous; the same function serves the
 * in-memory path (prepareData) and the token cache's worker threads, so both give the same tokens.
 * It must never shift labels (sequences do that) or add a token the template does not name.
 */
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';
import { DataError, type DataErrorWhere } from './DataError.js';
import type { Example, Stage } from './formats.js';
import { encodePair, encodeSft, IGNORE_INDEX, type SftOptions, type TemplateName, type TokenizedPair, type TokenizedSample } from './templates.js';

export interface EncodeOptions {
  stage: Stage;
  template: TemplateName;
  cutoffLen: number;
  /** default_system, enable_thinking, train_on_prompt, mask_history */
  templateOptions?: SftOptions;
  /** kto: rows per preprocessing batch (preprocessing_batch_size; default FEEDBACK_BATCH_ROWS) */
  feedbackBatchRows?: number;
}

export type EncodedSample = ({ kind: 'doc' } & TokenizedSample) | ({ kind: 'pair' } & TokenizedPair);

function where(ex: Example): DataErrorWhere {
  return ex.origin;
}

function ptEos(tok: TextTokenizer, template: TemplateName): number {
  if (template === 'llama3' && tok.kind === 'hf') {
    const ids = tok.encode('<|end_of_text|>');
    if (ids.length === 1) return ids[0]!;
  }
  return tok.eosId;
}

/** Tokenizes one PT/SFT example into an unshifted sample (pre-tokenized rows: cut only). */
export function tokenizeExample(ex: Example, tok: TextTokenizer, template: TemplateName, cutoffLen: number, o: SftOptions = {}): TokenizedSample {
  switch (ex.kind) {
    case 'tokens': {
      for (let i = 0; i < ex.inputIds.length; i++) {
        const id = ex.inputIds[i]!;
        if (id >= tok.vocabSize) throw new DataError(`token id ${id} does not fit vocab_size ${tok.vocabSize}`, { ...where(ex), field: `input_ids[${i}]` });
      }
      for (let i = 0; ex.labels && i < ex.labels.length; i++) {
        const id = ex.labels[i]!;
        if (id !== IGNORE_INDEX && (id < 0 || id >= tok.vocabSize)) throw new DataError(`label ${id} is neither ${IGNORE_INDEX} (ignored) nor a token id below vocab_size ${tok.vocabSize}`, { ...where(ex), field: `labels[${i}]` });
      }
      const n = Math.min(cutoffLen, ex.inputIds.length);
      return { inputIds: ex.inputIds.slice(0, n), labels: (ex.labels ?? ex.inputIds).slice(0, n) };
    }
    case 'text': {
      // As LLaMA-Factory's PT processor: BOS when the tokenizer adds one, the text, EOS
      // (`<|end_of_text|>` for the llama3 template, whose chat EOS is <|eot_id|>).
      const text = tok.encode(ex.text);
      const bos = tok.addBos && tok.bosId !== null ? 1 : 0;
      const ids = new Array<number>(bos + text.length + 1);
      if (bos) ids[0] = tok.bosId!;
      for (let i = 0; i < text.length; i++) ids[bos + i] = text[i]!;
      ids[bos + text.length] = ptEos(tok, template);
      return { inputIds: ids, labels: ids };
    }
    case 'sft':
      return encodeSft(tok, template, ex, cutoffLen, o);
    case 'pair':
      throw new DataError('a preference pair cannot be used for pt/sft', where(ex));
    case 'feedback':
      throw new DataError('a KTO example (kto_tag) cannot be used for pt/sft', where(ex));
  }
}

/** One pt/sft/dpo example (kto examples are encoded a batch at a time: feedback.ts). */
export function encodeExample(ex: Example, tok: TextTokenizer, o: EncodeOptions): EncodedSample {
  if (o.stage === 'kto') throw new DataError('stage kto encodes its examples a preprocessing batch at a time (encodeFeedbackBatch)', where(ex));
  if (o.stage === 'dpo') {
    if (ex.kind !== 'pair') throw new DataError('stage dpo needs chosen/rejected pairs', where(ex));
    return { kind: 'pair', ...encodePair(tok, o.template, ex, o.cutoffLen, o.templateOptions) };
  }
  return { kind: 'doc', ...tokenizeExample(ex, tok, o.template, o.cutoffLen, o.templateOptions) };
}
