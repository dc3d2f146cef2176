/**
 * Chat templates `default`, `llama3` and `qwen`, laid out as LLaMA-Factory's templates produce
 * them, and the SFT/DPO encoders with LLaMA-Factory's truncation (`infer_seqlen`: each turn's
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
 */
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';
import type { PairExample, SftExample, Turn } from './formats.js';

export type TemplateName = 'default' | 'llama3' | 'qwen';
export const IGNORE_INDEX = -100;

type Slot = string | { special: 'bos' | 'eos' };

interface Template {
  prefix: Slot[];
  system: (c: string) => Slot[];
  user: (c: string) => Slot[];
  assistant: (c: string) => Slot[];
  separator: string;
  defaultSystem: string | null;
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
};

function encodeSlots(tok: TextTokenizer, slots: Slot[]): number[] {
  const out: number[] = [];
  let text = '';
  const flush = (): void => { if (text.length > 0) out.push(...tok.encode(text)); text = ''; };
  for (const s of slots) {
    if (typeof s === 'string') { text += s; continue; }
    flush();
    const id = s.special === 'bos' ? tok.bosId : tok.eosId;
    if (id !== null) out.push(id);
  }
  flush();
  return out;
}

/** (prompt ids, response ids) per turn, before truncation. */
export function encodeTurns(tok: TextTokenizer, name: TemplateName, system: string | null, turns: readonly Turn[]): [number[], number[]][] {
  const t = TEMPLATES[name];
  const sys = system ?? t.defaultSystem;
  return turns.map((turn, i) => {
    const prompt: Slot[] = [];
    if (i === 0) {
      prompt.push(...t.prefix);
      if (sys) prompt.push(...t.system(sys));
    } else if (t.separator) prompt.push(t.separator);
    prompt.push(...t.user(turn.user));
    return [encodeSlots(tok, prompt), encodeSlots(tok, t.assistant(turn.assistant))];
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
  const encC = encodeTurns(tok, name, ex.system, turnsC);
  const encR = encodeTurns(tok, name, ex.system, turnsR);
  const prompt: number[] = [];
  // History turns are prompt: their answers are context, never trained in DPO.
  for (const [s, r] of encC) prompt.push(...s, ...r);
  prompt.splice(prompt.length - encC[encC.length - 1]![1].length);
  let chosen = encC[encC.length - 1]![1];
  let rejected = encR[encR.length - 1]![1];
  const [ns, nt] = inferSeqLen(prompt.length, Math.max(chosen.length, rejected.length), cutoffLen);
  chosen = chosen.slice(0, nt);
  rejected = rejected.slice(0, nt);
  return { prompt: prompt.slice(0, ns), chosen, rejected };
}
