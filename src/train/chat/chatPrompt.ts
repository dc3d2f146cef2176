/**
 * The prompt of a chat turn as LLaMA-Factory's chat engines build it: the conversation so far
 * (earlier turns with their answers) and the new user message, laid out by the template's
 * one-turn encoding with an empty final answer (templates.ts encodeTurns), ending where the
 * assistant's answer starts. Also the stop tokens of a template (LLaMA-Factory's stop_words plus
 * the tokenizer's EOS and the base's generation_config eos_token_id). Pure; must never add a
 * token the template does not name.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeTurns, type TemplateName } from '../data/templates.js';
import type { Turn } from '../data/formats.js';
import type { TextTokenizer } from '../tokenizer/TextTokenizer.js';
import { GENERATION_CONFIG_FILE } from '../tokenizer/tokenizerFiles.js';

/** LLaMA-Factory's stop_words of the templates that have them (the others stop at EOS). */
const STOP_WORDS: Partial<Record<TemplateName, readonly string[]>> = {
  llama3: ['<|eot_id|>', '<|eom_id|>'],
  qwen: ['<|im_end|>'],
  qwen3: ['<|im_end|>'],
};

/** Prompt ids for the next answer: `history` (answered turns), then the user message `user`. */
export function chatPromptIds(tok: TextTokenizer, template: TemplateName, system: string | null, history: readonly Turn[], user: string): number[] {
  const turns = encodeTurns(tok, template, system, [...history, { user, assistant: '' }], true);
  const ids: number[] = [];
  turns.forEach(([prompt, answer], i) => {
    ids.push(...prompt);
    if (i < turns.length - 1) ids.push(...answer);
  });
  return ids;
}

/**
 * Ids that end an answer: the tokenizer's EOS, the template's stop words (those the tokenizer
 * has as one token) and generation_config.json's eos_token_id (a number or a list) in `modelDir`.
 */
export function stopTokenIds(tok: TextTokenizer, template: TemplateName, modelDir: string | null): number[] {
  const ids = new Set<number>([tok.eosId]);
  for (const w of STOP_WORDS[template] ?? []) {
    const enc = tok.encode(w);
    if (enc.length === 1) ids.add(enc[0]!);
  }
  const file = modelDir === null ? null : join(modelDir, GENERATION_CONFIG_FILE);
  if (file !== null && existsSync(file)) {
    const g = JSON.parse(readFileSync(file, 'utf8')) as { eos_token_id?: unknown };
    const e = g.eos_token_id;
    for (const x of Array.isArray(e) ? e : [e]) if (Number.isInteger(x) && (x as number) >= 0 && (x as number) < tok.vocabSize) ids.add(x as number);
  }
  return [...ids].sort((a, b) => a - b);
}
