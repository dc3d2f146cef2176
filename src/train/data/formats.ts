/**
 * Turns raw rows into canonical examples: alpaca and ShareGPT (from/value or role/content) for
 * SFT, `text` for PT, chosen/rejected pairs for DPO, single answers tagged desirable or not
 * (`kto_tag`) for KTO, and pre-tokenized `input_ids`/`labels` rows.
 * Every problem is a DataError naming file, row and field; it must never silently drop or
 * repair a malformed row.
 */
import type { DatasetSpec, Tags } from './datasetInfo.js';
import { OPENAI_TAGS, SHAREGPT_TAGS } from './datasetInfo.js';
import { DataError } from './DataError.js';
import type { Row } from './rows/decodeRow.js';

export type Stage = 'pt' | 'sft' | 'dpo' | 'kto';

/** The data a job stage reads: rm trains on the same preference (ranking) pairs as dpo. */
export function dataStage(stage: Stage | 'rm'): Stage {
  return stage === 'rm' ? 'dpo' : stage;
}

export interface Turn { user: string; assistant: string }

/** Where an example came from (its row's byte offset is named by the errors of the row itself). */
export interface Origin { file: string; row: number; rowKind: 'line' | 'index' }

/** A conversation: optional system prompt, then user/assistant turns (each assistant is trained). */
export interface SftExample { kind: 'sft'; system: string | null; turns: Turn[]; origin: Origin }
export interface TextExample { kind: 'text'; text: string; origin: Origin }
/** History turns, then the last user prompt answered by `chosen` (preferred) or `rejected`. */
export interface PairExample {
  kind: 'pair'; system: string | null; history: Turn[]; prompt: string; chosen: string; rejected: string; origin: Origin;
}
/** History turns, then the last user prompt and one answer, desirable or not (LLaMA-Factory's kto_tag). */
export interface FeedbackExample {
  kind: 'feedback'; system: string | null; history: Turn[]; prompt: string; response: string; desirable: boolean; origin: Origin;
}
/** Pre-tokenized: used as is (labels default to input_ids); only cutoff_len is applied. */
export interface TokensExample { kind: 'tokens'; inputIds: number[]; labels: number[] | null; origin: Origin }

export type Example = SftExample | TextExample | PairExample | FeedbackExample | TokensExample;

type Obj = Record<string, unknown>;

class RowCtx {
  constructor(readonly r: Row) {}
  fail(field: string | undefined, msg: string): never {
    throw new DataError(msg, { file: this.r.file, row: this.r.row, rowKind: this.r.rowKind, offset: this.r.offset, field });
  }
  obj(): Obj {
    const v = this.r.value;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(undefined, 'a row must be a JSON object');
    return v as Obj;
  }
  str(o: Obj, field: string, required: boolean, path = field): string | null {
    const v = o[field];
    if (v === undefined || v === null) {
      if (required) this.fail(path, 'is missing');
      return null;
    }
    if (typeof v !== 'string') this.fail(path, `must be a string, got ${Array.isArray(v) ? 'array' : typeof v}`);
    return v;
  }
  ints(o: Obj, field: string, required: boolean, allowIgnore: boolean): number[] | null {
    const v = o[field];
    if (v === undefined || v === null) {
      if (required) this.fail(field, 'is missing');
      return null;
    }
    if (!Array.isArray(v)) this.fail(field, 'must be an array of integers');
    const a = v as unknown[];
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      const ok = typeof x === 'number' && Number.isInteger(x) && (x >= 0 || (allowIgnore && x === -100));
      if (!ok) this.fail(`${field}[${i}]`, `must be a ${allowIgnore ? 'token id or -100' : 'non-negative token id'}, got ${JSON.stringify(x)}`);
    }
    return a as number[];
  }
  /** The kto_tag column: true (desirable) or false, as LLaMA-Factory reads only booleans there. */
  tag(o: Obj, field: string): boolean {
    const v = o[field];
    if (typeof v !== 'boolean') this.fail(field, v === undefined ? 'is missing (the kto_tag column: true for a desirable answer, false for an undesirable one)' : `must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  }
  origin(): Origin { return { file: this.r.file, row: this.r.row, rowKind: this.r.rowKind }; }
}

export function isTokensRow(row: Row): boolean {
  const v = row.value;
  return v !== null && typeof v === 'object' && !Array.isArray(v) && 'input_ids' in (v as Obj);
}

/**
 * How every row of one dataset is read, decided once from its first row (as LLaMA-Factory's
 * dataset_info and column checks do): pre-tokenized, plain text (pt), or alpaca / ShareGPT with or
 * without preference pairs.
 */
export type RowFormat =
  | { kind: 'tokens' }
  | { kind: 'text' }
  | { kind: 'alpaca' | 'sharegpt'; ranking: boolean; feedback?: boolean };

export function detectFormat(first: Row, spec: DatasetSpec, stage: Stage): RowFormat {
  if (isTokensRow(first)) {
    if (stage === 'dpo' || stage === 'kto') throw new DataError(`pre-tokenized rows are not supported for ${stage}`, { file: spec.file });
    return { kind: 'tokens' };
  }
  if (stage === 'pt') return { kind: 'text' };
  const v = first.value;
  const obj = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : null;
  const sharegpt = spec.formatting === 'sharegpt' || (spec.formatting === 'auto' && obj !== null && (spec.columns.messages in obj || 'messages' in obj));
  const ranking = spec.ranking === 'auto' ? obj !== null && spec.columns.chosen in obj && spec.columns.rejected in obj : spec.ranking;
  if (stage === 'dpo' && !ranking) {
    throw new DataError(`dataset '${spec.name}' is not a preference dataset (set "ranking": true and give chosen/rejected)`, { file: spec.file });
  }
  if (stage === 'kto') {
    if (ranking) throw new DataError(`dataset '${spec.name}' is a preference (ranking) dataset; stage kto reads single answers tagged by a kto_tag column (true: desirable, false: undesirable)`, { file: spec.file });
    return { kind: sharegpt ? 'sharegpt' : 'alpaca', ranking: false, feedback: true };
  }
  if (stage === 'sft' && ranking) {
    throw new DataError(`dataset '${spec.name}' is a preference (ranking) dataset; use it with stage dpo`, { file: spec.file });
  }
  return { kind: sharegpt ? 'sharegpt' : 'alpaca', ranking };
}

/** One row in the format of its dataset. */
export function toExample(row: Row, format: RowFormat, spec: DatasetSpec): Example {
  const c = new RowCtx(row);
  switch (format.kind) {
    case 'tokens':
      return tokensRow(c);
    case 'text':
      return textRow(c, spec);
    case 'sharegpt':
      return format.feedback ? sharegptFeedbackRow(c, spec) : sharegptRow(c, spec, format.ranking);
    case 'alpaca':
      return format.feedback ? alpacaFeedbackRow(c, spec) : alpacaRow(c, spec, format.ranking);
  }
}

/** Converts the rows of one dataset for one stage. */
export function toExamples(rows: readonly Row[], spec: DatasetSpec, stage: Stage): Example[] {
  if (rows.length === 0) return [];
  const format = detectFormat(rows[0]!, spec, stage);
  return rows.map((r) => toExample(r, format, spec));
}

function tokensRow(c: RowCtx): TokensExample {
  const o = c.obj();
  const inputIds = c.ints(o, 'input_ids', true, false)!;
  if (inputIds.length === 0) c.fail('input_ids', 'must not be empty');
  const labels = c.ints(o, 'labels', false, true);
  if (labels !== null && labels.length !== inputIds.length) {
    c.fail('labels', `has ${labels.length} entries, input_ids has ${inputIds.length}`);
  }
  return { kind: 'tokens', inputIds, labels, origin: c.origin() };
}

function textRow(c: RowCtx, spec: DatasetSpec): TextExample {
  const o = c.obj();
  const text = c.str(o, spec.columns.text, true)!;
  return { kind: 'text', text, origin: c.origin() };
}

function alpacaHistory(c: RowCtx, o: Obj, spec: DatasetSpec): Turn[] {
  const h = o[spec.columns.history];
  if (h === undefined || h === null) return [];
  if (!Array.isArray(h)) c.fail(spec.columns.history, 'must be an array of [prompt, response] pairs');
  return (h as unknown[]).map((pair, i) => {
    const ok = Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && typeof pair[1] === 'string';
    if (!ok) c.fail(`${spec.columns.history}[${i}]`, 'must be a [prompt, response] pair of strings');
    return { user: (pair as string[])[0]!, assistant: (pair as string[])[1]! };
  });
}

/** An alpaca row's prompt (LLaMA-Factory joins instruction and a non-empty input with a newline), system and history. */
function alpacaContext(c: RowCtx, o: Obj, spec: DatasetSpec): { prompt: string; system: string | null; history: Turn[] } {
  const k = spec.columns;
  const instruction = c.str(o, k.prompt, true)!;
  const query = c.str(o, k.query, false);
  return { prompt: query ? `${instruction}\n${query}` : instruction, system: c.str(o, k.system, false), history: alpacaHistory(c, o, spec) };
}

function alpacaFeedbackRow(c: RowCtx, spec: DatasetSpec): FeedbackExample {
  const o = c.obj();
  const { prompt, system, history } = alpacaContext(c, o, spec);
  const response = c.str(o, spec.columns.response, true)!;
  return { kind: 'feedback', system, history, prompt, response, desirable: c.tag(o, spec.columns.kto_tag), origin: c.origin() };
}

function alpacaRow(c: RowCtx, spec: DatasetSpec, ranking: boolean): SftExample | PairExample {
  const o = c.obj();
  const k = spec.columns;
  const { prompt, system, history } = alpacaContext(c, o, spec);
  if (ranking) {
    const chosen = c.str(o, k.chosen, true)!;
    const rejected = c.str(o, k.rejected, true)!;
    return { kind: 'pair', system, history, prompt, chosen, rejected, origin: c.origin() };
  }
  const response = c.str(o, k.response, true)!;
  return { kind: 'sft', system, turns: [...history, { user: prompt, assistant: response }], origin: c.origin() };
}

interface Msg { role: 'user' | 'assistant' | 'system'; content: string }

function parseMessage(c: RowCtx, m: unknown, path: string, tags: Tags): Msg {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) c.fail(path, 'must be a message object');
  const mo = m as Obj;
  const role = c.str(mo, tags.role, true, `${path}.${tags.role}`)!;
  const content = c.str(mo, tags.content, true, `${path}.${tags.content}`)!;
  if (role === tags.user) return { role: 'user', content };
  if (role === tags.assistant) return { role: 'assistant', content };
  if (role === tags.system) return { role: 'system', content };
  return c.fail(`${path}.${tags.role}`, `unknown role '${role}' (expected ${tags.user}, ${tags.assistant} or ${tags.system})`);
}

/** A KTO conversation: user/assistant turns whose last answer is the tagged response. */
function sharegptFeedbackRow(c: RowCtx, spec: DatasetSpec): FeedbackExample {
  const sft = sharegptRow(c, spec, false);
  if (sft.kind !== 'sft') return c.fail(spec.columns.messages, 'must be a conversation');
  const last = sft.turns[sft.turns.length - 1]!;
  return { kind: 'feedback', system: sft.system, history: sft.turns.slice(0, -1), prompt: last.user, response: last.assistant, desirable: c.tag(c.obj(), spec.columns.kto_tag), origin: c.origin() };
}

function sharegptRow(c: RowCtx, spec: DatasetSpec, ranking: boolean): SftExample | PairExample {
  const o = c.obj();
  const col = spec.columns.messages in o ? spec.columns.messages : 'messages' in o ? 'messages' : spec.columns.messages;
  const raw = o[col];
  if (!Array.isArray(raw)) c.fail(col, raw === undefined ? 'is missing' : 'must be an array of messages');
  const list = raw as unknown[];
  let tags = spec.tags;
  if (tags === null) {
    const m0 = list[0];
    tags = m0 !== null && typeof m0 === 'object' && 'role' in (m0 as Obj) && !('from' in (m0 as Obj)) ? OPENAI_TAGS : SHAREGPT_TAGS;
  }
  const msgs = list.map((m, i) => parseMessage(c, m, `${col}[${i}]`, tags!));
  let system = c.str(o, spec.columns.system, false);
  let start = 0;
  if (msgs[0]?.role === 'system') { system = msgs[0].content; start = 1; }
  // Alternation as LLaMA-Factory checks it: user at even offsets, assistant at odd ones.
  for (let i = start; i < msgs.length; i++) {
    const want = (i - start) % 2 === 0 ? 'user' : 'assistant';
    if (msgs[i]!.role !== want) c.fail(`${col}[${i}].${tags.role}`, `expected ${want === 'user' ? 'a user' : 'an assistant'} message here, got ${msgs[i]!.role}`);
  }
  const body = msgs.slice(start);
  const turns: Turn[] = [];
  for (let i = 0; i + 1 < body.length; i += 2) turns.push({ user: body[i]!.content, assistant: body[i + 1]!.content });
  if (ranking) {
    if (body.length % 2 !== 1) c.fail(col, 'a preference conversation must end with a user message');
    const pick = (field: string): string => {
      const v = o[field];
      if (typeof v === 'string') return v;
      const m = parseMessage(c, v, field, tags!);
      if (m.role !== 'assistant') c.fail(`${field}.${tags!.role}`, `must be an assistant message, got ${m.role}`);
      return m.content;
    };
    return {
      kind: 'pair', system, history: turns, prompt: body[body.length - 1]!.content,
      chosen: pick(spec.columns.chosen), rejected: pick(spec.columns.rejected), origin: c.origin(),
    };
  }
  if (body.length === 0 || body.length % 2 !== 0) c.fail(col, `needs user/assistant pairs, got ${body.length} message(s) after the system prompt`);
  return { kind: 'sft', system, turns, origin: c.origin() };
}
