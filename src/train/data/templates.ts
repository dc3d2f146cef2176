/**
 * Chat templates `default`, `llama3`, `qwen`, `qwen3` and `mistral`, laid out as LLaMA-Factory's
 * templates of those names produce them, and the SFT/DPO encoders with LLaMA-Factory's truncation (`infer_seqlen`: each turn's
 * source and target keep a share of the remaining budget in proportion to their lengths; turns
 * after the budget is spent are dropped). Prompt tokens get label -100. This file must never add
 * a special token the template does not name.
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
 *            their `<think>\n...\n</think>\n\n` blocks.
 *   mistral: BOS, user `[INST] {system}\n\n{c}[/INST]` (the system prompt joins the first user
 *            message, as LLaMA-Factory's Llama2Template does), assistant ` {c}` EOS.
 */
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';
import { appendAll } from './appendAll.js';
import type { PairExample, SftExample, Turn } from './formats.js';

export type TemplateName = 'default' | 'llama3' | 'qwen' | 'qwen3' | 'mistral';
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
  qwen: {
    prefix: [],
    system: (c) => [`<|im_start|>system\n${c}<|im_end|>\n`],
    user: (c) => [`<|im_start|>user\n${c}<|im_end|>\n<|im_start|>assistant\n`],
    assistant: (c) => [`${c}<|im_end|>\n`],
    separator: '',
    defaultSystem: 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.',
  },
  qwen3: {
    prefix: [],
    system: (c) => [`<|im_start|>system\n${c}<|im_end|>\n`],
    user: (c) => [`<|im_start|>user\n${c}<|im_end|>\n<|im_start|>assistant\n`],
    assistant: (c) => [`${c}<|im_end|>\n`],
    separator: '',
    defaultSystem: null,
    thought: { open: '<think>\n', close: '\n</think>\n\n' },
  },
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
 * templates treat differently from a multi-turn SFT conversation (encode_multiturn).
 */
export function encodeTurns(tok: TextTokenizer, name: TemplateName, system: string | null, turns: readonly Turn[], oneTurn = false): [number[], number[]][] {
  const t = TEMPLATES[name];
  const sys = system ?? t.defaultSystem;
  const th = t.thought;
  const thoughtBlock = th ? new RegExp(`${escapeRegExp(th.open)}[\\s\\S]*?${escapeRegExp(th.close)}`, 'g') : null;
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
    // One-turn encoding drops the thoughts of the history answers (they are context).
    if (thoughtBlock && oneTurn && !last) answer = answer.replace(thoughtBlock, '').replace(/^\n+/, '');
    let response = encodeSlots(tok, t.assistant(answer));
    if (th && (!oneTurn || last) && !answer.includes(th.open.trim()) && !answer.includes(th.close.trim())) {
      response = appendAll(encodeSlots(tok, [th.open + th.close]), response);
    }
    return [encodeSlots(tok, prompt), response];
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

export function encodeSft(tok: TextTokenizer, name: TemplateName, ex: Pick<SftExample, 'system' | 'turns'>, cutoffLen: number): TokenizedSample {
  const inputIds: number[] = [];
  const labels: number[] = [];
  let total = 0;
  for (const [src, tgt] of encodeTurns(tok, name, ex.system, ex.turns)) {
    if (total >= cutoffLen) break;
    const [ns, nt] = inferSeqLen(src.length, tgt.length, cutoffLen - total);
    total += ns + nt;
    for (let i = 0; i < ns; i++) { inputIds.push(src[i]!); labels.push(IGNORE_INDEX); }
    for (let i = 0; i < nt; i++) { inputIds.push(tgt[i]!); labels.push(tgt[i]!); }
  }
  return { inputIds, labels };
}

/** Prompt (history + last user turn) and both answers, truncated together as LLaMA-Factory's pairwise processor does. */
export interface TokenizedPair { prompt: number[]; chosen: number[]; rejected: number[] }

export function encodePair(tok: TextTokenizer, name: TemplateName, ex: Pick<PairExample, 'system' | 'history' | 'prompt' | 'chosen' | 'rejected'>, cutoffLen: number): TokenizedPair {
  const turnsC = [...ex.history, { user: ex.prompt, assistant: ex.chosen }];
  const turnsR = [...ex.history, { user: ex.prompt, assistant: ex.rejected }];
  const encC = encodeTurns(tok, name, ex.system, turnsC, true);
  const encR = encodeTurns(tok, name, ex.system, turnsR, true);
  const prompt: number[] = [];
  // History turns are prompt: their answers are context, never trained in DPO.
  for (const [s, r] of encC) appendAll(appendAll(prompt, s), r);
  prompt.splice(prompt.length - encC[encC.length - 1]![1].length);
  let chosen = encC[encC.length - 1]![1];
  let rejected = encR[encR.length - 1]![1];
  const [ns, nt] = inferSeqLen(prompt.length, Math.max(chosen.length, rejected.length), cutoffLen);
  chosen = chosen.slice(0, nt);
  rejected = rejected.slice(0, nt);
  return { prompt: prompt.slice(0, ns), chosen, rejected };
}
