/**
 * The tokenizer and generation files of a Hugging Face model directory, and copying them into
 * another one (an exported or fine-tuned model), so that directory loads with
 * AutoTokenizer.from_pretrained and generates with the base model's settings. Files are copied
 * as they are (each under a temporary name, then renamed); the ones the base lacks are skipped.
 * Must never copy weights or config.json (their writers own them).
 */
import { existsSync } from 'node:fs';
import { copyFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** What transformers' tokenizers save (fast and slow), plus the chat template files. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'chat_template.json',
] as const;

export const GENERATION_CONFIG_FILE = 'generation_config.json';

/** Copies the tokenizer files and generation_config.json that `from` has into `to`; resolves to the names copied. */
export async function copyTokenizerFiles(from: string, to: string): Promise<string[]> {
  const copied: string[] = [];
  for (const f of [...TOKENIZER_FILES, GENERATION_CONFIG_FILE]) {
    const src = join(from, f);
    if (!existsSync(src)) continue;
    const tmp = join(to, `${f}.tmp-${process.pid}`);
    await rm(tmp, { force: true });
    await copyFile(src, tmp);
    await rename(tmp, join(to, f));
    copied.push(f);
  }
  return copied;
}
