/**
 * Chat templates `default`, `llama3`, `qwen`, `qwen3`, `qwen3_nothink`, `chatml` and `mistral`,
 * laid out as LLaMA-Factory's templates of those names produce them, and the SFT/DPO/KTO encoders
 * with LLaMA-Factory's truncation (`infer_seqlen`: each turn's source and target keep a share of
 * the remaining budget in proportion to their lengths; turns after the budget is spent are
 * dropped) and its SFT masking options: prompt tokens get label -100 unless `trainOnPrompt`;
 * `maskHistory` trains the last turn only, gives it the budget first (turns are encoded last to
 * first) and drops the thoughts of earlier answers under a reasoning template. This file must
 * never add a special token the template does not name.
 *
 * Layouts (`{c}` = content, EOS/BOS = the tokenizer's ids):
 *   default: system `System: {c}\n`; user `Human: {c}\nAssistant:`; assistant `{c}` EOS;
 *            turns after the first are preceded by `\n`.
 *   llama3:  BOS, `<|start_header_id|>system<|end_header_id|>\n\n{c}<|eot_id|>`, user
 *            `<|start_header_id|>user<|end_header_id|>\n\n{c}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`,
 *            assistant `{c}<|eot_id|>`.
 *   qwen:    `<|im_start|>system\n{c}<|im_end|>\n` (default system prompt when none is given),
 *            user `<|im_start|>user\n{c}<|im_end|>\n<|im_start|>assistant\n`, assistant `{c}<|im_end|>\n`.
 *   qwen3:   the qwen layout without a default system prompt, as a reasoning template (thinking
 *            on, LLaMA-Factory's default): an answer without `<think>` / `</think>` gets the empty
 *            thought `<think>\n\n</think>\n\n` (encoded on its own) before it, as a target; in a
 *            preference pair (one turn) only the final answer does, and the history answers lose
 *            their `<think>\n...\n</think>\n\n` blocks. With enable_thinking false every thought is
            dropped and the empty thought goes at the end of the prompt (context, not a target).
 *   qwen3_nothink: the qwen layout without a default system prompt and without thoughts.
 *   chatml:  the same ChatML layout, no default system prompt.
 *   mistral: BOS, user `[INST] {system}\n\n{c}[/INST]` (the system prompt joins the first user
 *            message, as LLaMA-Factory's Llama2Template does), assistant ` {c}` EOS.
 */
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';
import { appendAll } from './appendAll.js';
import type { PairExample, SftExample, Turn } from './formats.js';

export type TemplateName = 'default' | 'llama3' | 'qwen' | 'qwen3' | 'qwen3_nothink' | 'chatml' | 'mistral';
export const IGNORE_INDEX = -100;

type Slot = string | { special: 'bos' | 'eos' };

interface Template {
  prefix: Slot[];
  system: (c: string) => Slot[];
  user: (c: string) => Slot[];
  assistant: (c: string) => Slot[];
  separator: string;
  defaultSystem: string | null;
  /** The system text goes inside the first user message instead of before it (Llama2Template). */
  systemInUser?: boolean;
  /** Reasoning template: the thought delimiters (LLaMA-Factory's thought_words). */
  thought?: { open: string; close: string };
}

const EOS = { special: 'eos' } as const;
const BOS = { special: 'bos' } as const;

/** The ChatML layout (chatml, qwen, qwen3, qwen3_nothink differ only in the system prompt and thoughts). */
function chatml(extra: Partial<Template> = {}): Template {
  return {
    prefix: [],
    system: (c) => [`<|im_start|>system\n${c}<|im_end|>\n`],
    user: (c) => [`<|im_start|>user\n${c}<|im_end|>\n<|im_start|>assistant\n`],
    assistant: (c) => [`${c}<|im_end|>\n`],
    separator: '',
    defaultSystem: null,
    ...extra,
  };
}

/** What the job's data keys change in the layout (LLaMA-Factory's DataArguments of those names). */
export interface TemplateOptions {
  /** default_system: replaces the template's default system prompt */
  defaultSystem?: string | null;
  /** enable_thinking (reasoning templates only); default true */
  enableThinking?: boolean;
}

/** The SFT masking keys (train_on_prompt, mask_history). */
export interface SftOptions extends TemplateOptions {
  trainOnPrompt?: boolean;
  maskHistory?: boolean;
}

export const TEMPLATES: Record<TemplateName, Template> = {
  default: {
    prefix: [],
    system: (c) => [`System: ${c}\n`],
    user: (c) => [`Human: ${c}\nAssistant:`],
    assistant: (c) => [c, EOS],
    separator: '\n',
    defaultSystem: null,
  },
  llama3: {
    prefix: [BOS],
    system: (c) => [`<|start_header_id|>system<|end_header_id|>\n\n${c}<|eot_id|>`],
    user: (c) => [`<|start_header_id|>user<|end_header_id|>\n\n${c}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`],
    assistant: (c) => [`${c}<|eot_id|>`],
    separator: '',
    defaultSystem: null,
  },
  qwen: chatml({ defaultSystem: 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }),
  qwen3: chatml({ thought: { open: '<think>\n', close: '\n</think>\n\n' } }),
  qwen3_nothink: chatml(),
  chatml: chatml(),
  mistral: {
    prefix: [BOS],
    system: (c) => [`${c}\n\n`],
    user: (c) => [`[INST] ${c}[/INST]`],
    assistant: (c) => [` ${c}`, EOS],
    separator: '',
    defaultSystem: null,
    systemInUser: true,
  },
};

function encodeSlots(tok: TextTokenizer, slots: Slot[]): number[] {
  const out: number[] = [];
  let text = '';
  const flush = (): void => { if (text.length > 0) appendAll(out, tok.encode(text)); text = ''; };
  for (const s of slots) {
    if (typeof s === 'string') { text += s; continue; }
    flush();
    const id = s.special === 'bos' ? tok.bosId : tok.eosId;
    if (id !== null) out.push(id);
  }
  flush();
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * (prompt ids, response ids) per turn, before truncation. `oneTurn`: the turns are one preference
 * example's history plus its final answer (LLaMA-Factory's encode_oneturn), which reasoning
 * templates treat differently from a multi-turn SFT conversation (encode_multiturn); so do
 * `discardHistoryThought` conversations (mask_history): only the last answer keeps a thought.
 */
export function encodeTurns(tok: TextTokenizer, name: TemplateName, system: string | null, turns: readonly Turn[], oneTurn = false, o: TemplateOptions & { discardHistoryThought?: boolean } = {}): [number[], number[]][] {
  const t = TEMPLATES[name];
  // as LLaMA-Factory: an empty system prompt also falls back to the default one
  const sys = system || (o.defaultSystem ?? t.defaultSystem);
  const th = t.thought;
  const thinking = o.enableThinking ?? true;
  const thoughtBlock = th ? new RegExp(`${escapeRegExp(th.open)}[\\s\\S]*?${escapeRegExp(th.close)}`, 'g') : null;
  const dropThought = (a: string) => a.replace(thoughtBlock!, '').replace(/^\n+/, '');
  const historyLoses = oneTurn || o.discardHistoryThought === true;
  return turns.map((turn, i) => {
    const prompt: Slot[] = [];
    let user = turn.user;
    if (i === 0) {
      appendAll(prompt, t.prefix);
      if (sys && t.systemInUser) user = (t.system(sys) as string[]).join('') + user;
      else if (sys) appendAll(prompt, t.system(sys));
    } else if (t.separator) prompt.push(t.separator);
    appendAll(prompt, t.user(user));
    const last = i === turns.length - 1;
    let answer = turn.assistant;
    // The thoughts of history answers are context (one-turn encoding, mask_history); thinking off drops all.
    if (thoughtBlock && ((historyLoses && !last) || !thinking)) answer = dropThought(answer);
    let response = encodeSlots(tok, t.assistant(answer));
    let promptIds = encodeSlots(tok, prompt);
    if (th && (!historyLoses || last) && !answer.includes(th.open.trim()) && !answer.includes(th.close.trim())) {
      const empty = encodeSlots(tok, [th.open + th.close]);
      // thinking on: the empty thought is a target; off: context at the end of the prompt
      if (thinking) response = appendAll(empty, response);
      else promptIds = appendAll(promptIds, empty);
    }
    return [promptIds, response];
  });
}

/** LLaMA-Factory's infer_seqlen: how many source and target tokens fit in `cutoff`. */
export function inferSeqLen(sourceLen: number, targetLen: number, cutoff: number): [number, number] {
  let maxTarget: number;
  if (targetLen * 2 < cutoff) maxTarget = cutoff;
  else if (sourceLen * 2 < cutoff) maxTarget = cutoff - sourceLen;
  else maxTarget = Math.floor(cutoff * (targetLen / (sourceLen + targetLen)));
  const newTarget = Math.min(maxTarget, targetLen);
  const newSource = Math.min(Math.max(cutoff - newTarget, 0), sourceLen);
  return [newSource, newTarget];
}

/** Unshifted token/label layout of one example: labels[t] = -100 or inputIds[t]. */
export interface TokenizedSample { inputIds: number[]; labels: number[] }

export function encodeSft(tok: TextTokenizer, name: TemplateName, ex: Pick<SftExample, 'system' | 'turns'>, cutoffLen: number, o: SftOptions = {}): TokenizedSample {
  let inputIds: number[] = [];
  let labels: number[] = [];
  let total = 0;
  let pairs = encodeTurns(tok, name, ex.system, ex.turns, false, { ...o, discardHistoryThought: o.maskHistory });
  // mask_history: the last turns get the budget first; they are put back in order below
  if (o.maskHistory) pairs = [...pairs].reverse();
  for (const [turn, [src, tgt]] of pairs.entries()) {
    if (total >= cutoffLen) break;
    const [ns, nt] = inferSeqLen(src.length, tgt.length, cutoffLen - total);
    total += ns + nt;
    const ids = [...src.slice(0, ns), ...tgt.slice(0, nt)];
    const lab = [
      ...(o.trainOnPrompt ? src.slice(0, ns) : new Array<number>(ns).fill(IGNORE_INDEX)),
      ...(o.maskHistory && turn !== 0 ? new Array<number>(nt).fill(IGNORE_INDEX) : tgt.slice(0, nt)),
    ];
    if (o.maskHistory) {
      inputIds = [...ids, ...inputIds];
      labels = [...lab, ...labels];
    } else {
      inputIds.push(...ids);
      labels.push(...lab);
    }
  }
  return { inputIds, labels };
}

/** Prompt (history + last user turn) and both answers, truncated together as LLaMA-Factory's pairwise processor does. */
export interface TokenizedPair { prompt: number[]; chosen: number[]; rejected: number[] }

/**
 * LLaMA-Factory's encode_oneturn: the history turns and the last user message as one prompt
 * (history answers are context, never trained), and the final answer's ids.
 */
function encodeOneTurn(tok: TextTokenizer, name: TemplateName, ex: Pick<PairExample, 'system' | 'history' | 'prompt'>, answer: string, o: TemplateOptions): [number[], number[]] {
  const enc = encodeTurns(tok, name, ex.system, [...ex.history, { user: ex.prompt, assistant: answer }], true, o);
  const prompt: number[] = [];
  for (const [s, r] of enc) appendAll(appendAll(prompt, s), r);
  const last = enc[enc.length - 1]![1];
  prompt.splice(prompt.length - last.length);
  return [prompt, last];
}

export function encodePair(tok: TextTokenizer, name: TemplateName, ex: Pick<PairExample, 'system' | 'history' | 'prompt' | 'chosen' | 'rejected'>, cutoffLen: number, o: TemplateOptions = {}): TokenizedPair {
  const [prompt, chosenIds] = encodeOneTurn(tok, name, ex, ex.chosen, o);
  const rejectedIds = encodeOneTurn(tok, name, ex, ex.rejected, o)[1];
  const [ns, nt] = inferSeqLen(prompt.length, Math.max(chosenIds.length, rejectedIds.length), cutoffLen);
  return { prompt: prompt.slice(0, ns), chosen: chosenIds.slice(0, nt), rejected: rejectedIds.slice(0, nt) };
}

/** Prompt and one answer (KTO), truncated together as LLaMA-Factory's feedback processor does. */
export interface TokenizedAnswer { prompt: number[]; response: number[] }

export function encodeAnswer(tok: TextTokenizer, name: TemplateName, ex: Pick<PairExample, 'system' | 'history' | 'prompt'>, response: string, cutoffLen: number, o: TemplateOptions = {}): TokenizedAnswer {
  const [prompt, ids] = encodeOneTurn(tok, name, ex, response, o);
  const [ns, nt] = inferSeqLen(prompt.length, ids.length, cutoffLen);
  return { prompt: prompt.slice(0, ns), response: ids.slice(0, nt) };
}
