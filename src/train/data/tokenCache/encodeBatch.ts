/**
 * The work of a tokenizer thread: one batch of raw rows (their bytes packed into one buffer) to
 * the cache's arrays for those rows (tokens in the cache's dtype, label masks, explicit labels,
 * document lengths, prompt lengths for pairs and KTO examples, KTO tags). Rows are decoded, checked against their dataset's
 * format, and encoded exactly as prepareData does (same functions), documents cut as the packing
 * keeps them. A pure function of the batch and the tokenizer; the first bad row throws its
 * DataError. It must never reorder rows.
 */
import type { TextTokenizer } from '../../tokenizer/TextTokenizer.js';
import type { DatasetSpec } from '../datasetInfo.js';
import { encodeExample, type EncodeOptions } from '../encodeExample.js';
import { encodeFeedbackBatch } from '../feedback.js';
import { toExample, type RowFormat } from '../formats.js';
import { decodeRow } from '../rows/decodeRow.js';
import type { FileKind } from '../rows/fileRows.js';
import type { RawRow } from '../rows/RawRow.js';
import type { PackOptions } from '../sequences.js';
import { IGNORE_INDEX } from '../templates.js';
import { MASK_EXPLICIT, MASK_IGNORE, MASK_TOKEN, type TokenDtype } from './cacheLayout.js';
import { TypedBuilder } from './TypedBuilder.js';

/** Rows of one dataset, in file order, as one transferable message. */
export interface RowBatch {
  id: number;
  dataset: number;
  kind: FileKind;
  format: RowFormat;
  rowKind: 'line' | 'index';
  bytes: Uint8Array;
  /** row k is bytes [starts[k], starts[k + 1]) */
  starts: Float64Array;
  rows: Float64Array;
  offsets: Float64Array;
}

export interface EncodedBatch {
  id: number;
  tokens: Uint8Array | Uint16Array | Int32Array;
  mask: Uint8Array;
  /** positions relative to the batch's first token */
  explicitPos: Float64Array;
  explicitVal: Int32Array;
  /** stored length of each document (pairs: chosen, rejected, chosen, ...) */
  lens: Int32Array;
  /** pairs and KTO examples only: the prompt length of each document */
  prompts: Int32Array | null;
  /** KTO only: 1 for a desirable example, 0 for an undesirable one (one per example) */
  tags: Uint8Array | null;
  /** supervised targets inside the documents (mask != 0 after each document's first token) */
  supervised: number;
  rows: number;
}

export interface EncodeContext {
  specs: readonly DatasetSpec[];
  tok: TextTokenizer;
  opts: EncodeOptions;
  pack: PackOptions;
  tokenDtype: TokenDtype;
}

/** Builds a RowBatch from raw rows (the driver side); the bytes are copied into one buffer. */
export function packRows(id: number, dataset: number, kind: FileKind, format: RowFormat, raws: readonly RawRow[]): RowBatch {
  let total = 0;
  for (const r of raws) total += r.bytes.length;
  const bytes = new Uint8Array(total);
  const starts = new Float64Array(raws.length + 1);
  const rows = new Float64Array(raws.length);
  const offsets = new Float64Array(raws.length);
  let at = 0;
  raws.forEach((r, k) => {
    starts[k] = at;
    bytes.set(r.bytes, at);
    at += r.bytes.length;
    rows[k] = r.row;
    offsets[k] = r.offset;
  });
  starts[raws.length] = at;
  return { id, dataset, kind, format, rowKind: raws[0]?.rowKind ?? 'line', bytes, starts, rows, offsets };
}

function tokenBuilder(dtype: TokenDtype, capacity: number): TypedBuilder<Uint8Array> | TypedBuilder<Uint16Array> | TypedBuilder<Int32Array> {
  if (dtype === 'u8') return new TypedBuilder(Uint8Array, capacity);
  if (dtype === 'u16') return new TypedBuilder(Uint16Array, capacity);
  return new TypedBuilder(Int32Array, capacity);
}

export function encodeBatch(b: RowBatch, ctx: EncodeContext): EncodedBatch {
  const spec = ctx.specs[b.dataset]!;
  const capacity = Math.max(1024, b.bytes.length + 64 * b.rows.length);
  const tokens = tokenBuilder(ctx.tokenDtype, capacity);
  const mask = new TypedBuilder(Uint8Array, capacity);
  const xpos = new TypedBuilder(Float64Array, 16);
  const xval = new TypedBuilder(Int32Array, 16);
  const lens = new TypedBuilder(Int32Array, b.rows.length * 2);
  const twoSided = ctx.opts.stage === 'dpo' || ctx.opts.stage === 'kto';
  const prompts = twoSided ? new TypedBuilder(Int32Array, b.rows.length * 2) : null;
  const tags = ctx.opts.stage === 'kto' ? new TypedBuilder(Uint8Array, b.rows.length) : null;
  let supervised = 0;
  const doc = (ids: ArrayLike<number>, labels: ArrayLike<number>, n: number): void => {
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      const l = labels[i]!;
      tokens.push(id);
      if (l === IGNORE_INDEX) mask.push(MASK_IGNORE);
      else {
        if (i > 0) supervised++;
        if (l === id) mask.push(MASK_TOKEN);
        else {
          mask.push(MASK_EXPLICIT);
          xpos.push(tokens.length - 1);
          xval.push(l);
        }
      }
    }
    lens.push(n);
  };
  const side = (prompt: readonly number[], answer: readonly number[]): void => {
    const n = prompt.length + answer.length;
    for (let i = 0; i < prompt.length; i++) {
      tokens.push(prompt[i]!);
      mask.push(MASK_IGNORE);
    }
    for (let i = 0; i < answer.length; i++) {
      tokens.push(answer[i]!);
      mask.push(MASK_TOKEN);
      if (prompt.length + i > 0) supervised++;
    }
    lens.push(n);
    prompts!.push(prompt.length);
  };
  const n = b.rows.length;
  const example = (k: number) => {
    const raw: RawRow = { bytes: b.bytes.subarray(b.starts[k]!, b.starts[k + 1]!), row: b.rows[k]!, rowKind: b.rowKind, offset: b.offsets[k]! };
    return toExample(decodeRow(raw, b.kind, spec.file), b.format, spec);
  };
  // KTO: the batch is one preprocessing batch; its examples borrow each other's answers (feedback.ts)
  if (tags) {
    for (const e of encodeFeedbackBatch(Array.from({ length: n }, (_, k) => example(k)), ctx.tok, ctx.opts)) {
      side(e.target.prompt, e.target.response);
      side(e.kl.prompt, e.kl.response);
      tags.push(e.desirable ? 1 : 0);
    }
  }
  for (let k = 0; k < n && !tags; k++) {
    const enc = encodeExample(example(k), ctx.tok, ctx.opts);
    if (enc.kind === 'pair') {
      side(enc.prompt, enc.chosen);
      side(enc.prompt, enc.rejected);
    } else {
      const len = enc.inputIds.length;
      doc(enc.inputIds, enc.labels, ctx.pack.overflow === 'truncate' ? Math.min(len, ctx.pack.cutoffLen) : len);
    }
  }
  return {
    id: b.id,
    tokens: tokens.take(),
    mask: mask.take(),
    explicitPos: xpos.take(),
    explicitVal: xval.take(),
    lens: lens.take(),
    prompts: prompts ? prompts.take() : null,
    tags: tags ? tags.take() : null,
    supervised,
    rows: n,
  };
}

/** The buffers of an encoded batch, for a zero-copy postMessage. */
export function transferList(e: EncodedBatch): ArrayBuffer[] {
  const views = [e.tokens, e.mask, e.explicitPos, e.explicitVal, e.lens, ...(e.prompts ? [e.prompts] : []), ...(e.tags ? [e.tags] : [])];
  return views.map((v) => v.buffer as ArrayBuffer);
}
