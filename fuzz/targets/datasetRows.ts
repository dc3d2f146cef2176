/**
 * Fuzz target `dataset-rows`: the rows of one data file through train/data's prepareData (row
 * reading for .json arrays, .jsonl and .txt; alpaca, ShareGPT, OpenAI-message, preference and
 * pre-tokenized rows; template encoding, truncation and packing) with the byte tokenizer.
 * Input: two option bytes, then the file. Option byte 0 picks the file kind, the stage, the
 * template and packing; byte 1 the dataset_info.json entry (auto-detected path, alpaca,
 * ShareGPT, ShareGPT with OpenAI tags, ranking or a PT prompt column), cutoff_len and the
 * vocabulary (256: control bytes reserved, or 512). Only a DataError is a documented refusal;
 * whatever is accepted must meet the prepared-data contract (dataInvariants.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '../../src/train/data/DataError.js';
import { prepareData, type Stage, type TemplateName } from '../../src/train/data/index.js';
import { ByteTokenizer } from '../../src/train/tokenizer/ByteTokenizer.js';
import { checkPrepared } from './dataInvariants.js';
import { expectOnly, scratchDir } from './harness.js';

const KINDS = ['json', 'jsonl', 'txt'] as const;
const STAGES: readonly Stage[] = ['pt', 'sft', 'dpo'];
const TEMPLATE_NAMES: readonly TemplateName[] = ['default', 'llama3', 'qwen', 'qwen3', 'mistral'];
const OPENAI = { role_tag: 'role', content_tag: 'content', user_tag: 'user', assistant_tag: 'assistant', system_tag: 'system' };
/** dataset_info.json entries over the same file; null: the file given as a path (formats detected). */
const ENTRIES: readonly (Record<string, unknown> | null)[] = [
  null,
  {},
  { formatting: 'sharegpt', columns: { messages: 'conversations', system: 'system' } },
  { formatting: 'sharegpt', columns: { messages: 'messages' }, tags: OPENAI },
  { ranking: true, columns: { prompt: 'instruction', query: 'input', chosen: 'chosen', rejected: 'rejected' } },
  { formatting: 'sharegpt', ranking: true, columns: { messages: 'conversations', chosen: 'chosen', rejected: 'rejected' } },
  { columns: { prompt: 'content' } },
  { formatting: 'sharegpt', tags: { role_tag: 'speaker', content_tag: 'text', user_tag: 'q', assistant_tag: 'a', system_tag: 's' } },
];

function setup(dir: string): void {
  const info: Record<string, unknown> = {};
  for (const kind of KINDS) ENTRIES.forEach((e, i) => { if (e) info[`${kind}_${i}`] = { file_name: `rows.${kind}`, ...e }; });
  writeFileSync(join(dir, 'dataset_info.json'), JSON.stringify(info));
}

export function fuzz(data: Buffer): void {
  if (data.length < 2) return;
  const dir = scratchDir('dataset-rows', setup);
  const a = data[0]!, b = data[1]!;
  const kind = KINDS[a % 3]!;
  const stage = STAGES[Math.floor(a / 3) % 3]!;
  const template = TEMPLATE_NAMES[Math.floor(a / 9) % 5]!;
  const packing = a >= 128;
  const entry = b % ENTRIES.length;
  const cutoffLen = 2 + (Math.floor(b / ENTRIES.length) % 16) * 17;
  const vocab = b >= 128 ? 512 : 256;
  const file = join(dir, `rows.${kind}`);
  writeFileSync(file, data.subarray(2));
  const dataset = [ENTRIES[entry] ? `${kind}_${entry}` : file];
  const prepared = expectOnly(
    () => prepareData({ stage, dataset, datasetDir: dir, template, cutoffLen, maxSamples: null, packing }, new ByteTokenizer(vocab)),
    (e) => e instanceof DataError,
  );
  if (prepared) checkPrepared(prepared, cutoffLen, vocab);
}
